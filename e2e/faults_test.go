package e2e

// The fault suite of issue 12: a broker that dies and comes back, a
// projector that stops for a while, an entry of the log nothing can fold.
// Each test writes under a steady load the way a real client does (a 503
// is retried with the same op_id after Retry-After), then checks that
// every acknowledged operation is in the log exactly once and readable,
// and that every process recovered by itself. Each prints its figures.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// faultLoad writes messages to one channel through one ingest, from a few
// workers, each retrying an operation answered 503 (or not answered) with
// the same op_id until it is acknowledged, as a client following
// Retry-After does. Any other answer is unexpected.
type faultLoad struct {
	g      *gateway
	ch     chanCred
	prefix string
	pause  time.Duration // between one worker's operations

	mu         sync.Mutex
	acked      []string // op_ids, in acknowledgement order
	ackTimes   []time.Time
	sent       int // distinct operations
	attempts   int
	unavail    int // 503 answers
	noAnswer   int // transport errors
	first503   time.Time
	last503    time.Time
	unexpected []string
	notAcked   []string // op_ids still unacknowledged when the load was cut off
}

func newFaultLoad(g *gateway, ch chanCred, prefix string) *faultLoad {
	return &faultLoad{g: g, ch: ch, prefix: prefix, pause: 10 * time.Millisecond}
}

// run writes until stop is closed (each worker finishes the operation it
// has begun) or ctx ends.
func (l *faultLoad) run(ctx context.Context, workers int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if !l.one(ctx, fmt.Sprintf("%s-%d-%d", l.prefix, w, n)) {
					return
				}
				time.Sleep(l.pause)
			}
		}()
	}
	wg.Wait()
}

// one sends an operation until it is acknowledged; false when ctx ended
// first.
func (l *faultLoad) one(ctx context.Context, opID string) bool {
	body := mustJSON(nil, map[string]any{
		"channel_id": l.ch.ID, "password": l.ch.Password, "op_id": opID,
		"title": "fault load " + opID, "body": "steady write load",
	})
	l.mu.Lock()
	l.sent++
	l.mu.Unlock()
	for {
		if ctx.Err() != nil {
			l.mu.Lock()
			l.notAcked = append(l.notAcked, opID)
			l.mu.Unlock()
			return false
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		r, err := l.g.Do(rctx, http.MethodPost, "/message", body, nil)
		cancel()
		now := time.Now()
		l.mu.Lock()
		l.attempts++
		switch {
		case err != nil:
			l.noAnswer++
			l.mu.Unlock()
			time.Sleep(250 * time.Millisecond)
			continue
		case r.Status == http.StatusServiceUnavailable:
			l.unavail++
			if l.first503.IsZero() {
				l.first503 = now
			}
			l.last503 = now
			wait := 250 * time.Millisecond
			if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = min(time.Duration(s)*time.Second, time.Second)
			} else {
				l.unexpected = append(l.unexpected, "503 without Retry-After: "+r.String())
			}
			l.mu.Unlock()
			time.Sleep(wait)
			continue
		}
		data, derr := okData(r, messageKeys...)
		switch {
		case derr != nil:
			l.unexpected = append(l.unexpected, derr.Error())
		case data["op_id"] != opID:
			l.unexpected = append(l.unexpected, fmt.Sprintf("op_id %v answered for %s", data["op_id"], opID))
		default:
			l.acked = append(l.acked, opID)
			l.ackTimes = append(l.ackTimes, now)
		}
		l.mu.Unlock()
		return true
	}
}

// ackCount is the number of acknowledged operations so far.
func (l *faultLoad) ackCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// acksAfter is the number of operations acknowledged after at.
func (l *faultLoad) acksAfter(at time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ts := range l.ackTimes {
		if ts.After(at) {
			n++
		}
	}
	return n
}

// firstAckAfter is the time of the first acknowledgement after at.
func (l *faultLoad) firstAckAfter(at time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ts := range l.ackTimes {
		if ts.After(at) {
			return ts
		}
	}
	return time.Time{}
}

// unavailableCount is the number of 503 answers so far.
func (l *faultLoad) unavailableCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unavail
}

// waitFor polls cond until it holds, failing the test after bound or when
// a watched process exits.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool, watch ...*gateway) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		failIfExited(t, watch)
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check fails the test on unexpected answers and operations left
// unacknowledged, checks that every acknowledged operation is in the log
// at natsURL exactly once (and no op_id of the load twice), and logs the
// figures. It returns the last acknowledged op_id.
func (l *faultLoad) check(t *testing.T, natsURL string) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, u := range l.unexpected {
		if i == 10 {
			t.Errorf("... %d unexpected answers in all", len(l.unexpected))
			break
		}
		t.Errorf("unexpected answer: %s", u)
	}
	if len(l.notAcked) > 0 {
		t.Errorf("%d operations were never acknowledged (retried until the deadline): %v", len(l.notAcked), l.notAcked)
	}
	if len(l.acked) == 0 {
		t.Fatal("no operation was acknowledged")
	}
	// By the op_id header: the log may hold an entry that is not an
	// operation (TestPoisonedLogEntry), which readOps refuses.
	idx := map[string][]uint64{}
	for _, m := range readStream(t, natsURL, opsStream) {
		op := m.Header.Get(headerOpID)
		idx[op] = append(idx[op], m.Sequence)
	}
	found, lost, dups := 0, 0, 0
	for _, op := range l.acked {
		switch n := len(idx[op]); {
		case n == 0:
			if lost++; lost <= 10 {
				t.Errorf("acknowledged op_id %s is not in %s", op, opsStream)
			}
		case n > 1:
			dups++
			t.Errorf("acknowledged op_id %s is in %s %d times", op, opsStream, n)
		default:
			found++
		}
	}
	extra := 0
	for op, msgs := range idx {
		if !strings.HasPrefix(op, l.prefix+"-") {
			continue
		}
		if len(msgs) > 1 && !containsStr(l.acked, op) {
			t.Errorf("op_id %s is in %s %d times", op, opsStream, len(msgs))
		}
		extra++
	}
	extra -= found
	t.Logf("load: %d operations sent in %d attempts, %d acknowledged, %d of them found once in %s (%d lost, %d duplicated), %d logged but unacknowledged; %d answers 503, %d requests unanswered, %d unexpected answers",
		l.sent, l.attempts, len(l.acked), found, opsStream, lost, dups, extra, l.unavail, l.noAnswer, len(l.unexpected))
	if !l.first503.IsZero() {
		t.Logf("503 window: %s, from the first 503 to the last", l.last503.Sub(l.first503).Round(time.Millisecond))
	}
	return l.acked[len(l.acked)-1]
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// historyOpIDs pages a channel's /channel/history through g and counts
// each op_id.
func historyOpIDs(t *testing.T, g *gateway, c chanCred) map[string]int {
	t.Helper()
	out := map[string]int{}
	var after uint64
	for page := 0; ; page++ {
		if page > 200 {
			t.Fatal("/channel/history: more than 200 pages; next_after does not advance?")
		}
		r := g.Post(t, "/channel/history", mustJSON(t, map[string]any{"channel_id": c.ID, "password": c.Password, "after": after, "limit": 1000}))
		data := mustOK(t, r, "items", "next_after", "has_more", "first_seq")
		items, _ := data["items"].([]any)
		for _, raw := range items {
			m, _ := raw.(map[string]any)
			op, _ := m["op_id"].(string)
			out[op]++
		}
		next, ok := asUint(data["next_after"])
		if !ok {
			t.Fatalf("/channel/history: next_after %v: %s", data["next_after"], r)
		}
		if data["has_more"] != true {
			return out
		}
		if next <= after {
			t.Fatalf("/channel/history: has_more with next_after %d after %d", next, after)
		}
		after = next
	}
}

// checkReadable fails the test unless the channel's history read through
// g holds every acknowledged operation of l exactly once.
func (l *faultLoad) checkReadable(t *testing.T, g *gateway) {
	t.Helper()
	hist := historyOpIDs(t, g, l.ch)
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 0
	for _, op := range l.acked {
		if n := hist[op]; n != 1 {
			if missing++; missing <= 10 {
				t.Errorf("acknowledged op_id %s is in the channel's history %d times, want once", op, n)
			}
		}
	}
	last := l.acked[len(l.acked)-1]
	if hist[last] != 1 {
		t.Errorf("the last acknowledged operation %s is not readable", last)
	}
	t.Logf("reads: %d of %d acknowledged operations in the channel's history, the last one (%s) included: %v",
		len(l.acked)-missing, len(l.acked), last, hist[last] == 1)
}

// hostPort is the host:port of a URL such as http://127.0.0.1:8080.
func hostPort(url string) string {
	_, hp, _ := strings.Cut(url, "://")
	return hp
}

// TestBrokerStopAndRestart: process A runs the embedded broker (and an
// ingest); a second ingest B, a projector and a pusher are connected to
// it. Under a steady write load through B, A is killed with SIGKILL (the
// broker dies) and started again on the same data directory and ports.
// Meanwhile B answers 503 with Retry-After (never 500); the clients retry
// with the same op_id; once the broker is back every acknowledged
// operation is in the log exactly once, the projector and the pusher are
// ready again by themselves, the projector's reads include the last
// acknowledged operation, and the pusher delivers a push sent afterwards.
func TestBrokerStopAndRestart(t *testing.T) {
	t.Parallel()
	fake := sendertest.NewFakeFCM(t)
	a := startIngest(t)
	b := startGateway(t, gwConfig{DataDir: t.TempDir(), Target: "ingest", NATSURL: a.natsURL,
		Env: []string{"PUSHGO_APPEND_TIMEOUT=2s"}})
	proj := startProjector(t, a, t.TempDir())
	push := startPusher(t, a, fcmCredentials(t), fake.Endpoint())
	for _, g := range []*gateway{proj, push} {
		waitStatus(t, g, "/readyz", 200, 30*time.Second)
	}
	waitServed(t, b, 30*time.Second, a, proj, push)

	load := chanCred{Password: "broker-restart-" + randomHex(t, 8)}
	load.ID = createChannel(t, b, "broker-restart", load.Password)
	probe := chanCred{Password: "broker-probe-" + randomHex(t, 8)}
	probe.ID = createChannel(t, b, "broker-probe", probe.Password)
	dev := postOK(t, b, "/device/register", map[string]any{"platform": "android"})["device_key"].(string)
	postOK(t, b, "/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": "fcm-restart-" + randomHex(t, 4)})
	postOK(t, b, "/channel/subscribe", map[string]any{"device_key": dev, "channel_id": probe.ID, "password": probe.Password})

	l := newFaultLoad(b, load, "brk")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, 3, stop)
	}()
	defer func() { // on a failure before the load is stopped
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	waitFor(t, "200 acknowledgements before the fault", 30*time.Second, func() bool { return l.ackCount() >= 200 }, a, b, proj, push)
	before := l.ackCount()
	killedAt := time.Now()
	a.kill()
	// The broker is down: B says so with 503s (positive signal), and the
	// projector and pusher are not ready.
	waitFor(t, "503 answers while the broker is down", 30*time.Second, func() bool { return l.unavailableCount() >= 5 }, b, proj, push)
	l.mu.Lock()
	first503 := l.first503.Sub(killedAt)
	l.mu.Unlock()
	for _, g := range []*gateway{proj, push} {
		waitStatus(t, g, "/readyz", http.StatusServiceUnavailable, 15*time.Second)
	}
	downFor := time.Since(killedAt)

	restartAt := time.Now()
	a2 := startGateway(t, gwConfig{DataDir: a.cfg.DataDir, Target: "ingest", HTTPAddr: hostPort(a.base), NATSAddr: hostPort(a.natsURL)})
	waitFor(t, "100 acknowledgements after the restart", 45*time.Second, func() bool { return l.acksAfter(restartAt) >= 100 }, a2, b, proj, push)
	firstAck := l.firstAckAfter(restartAt)
	ready := map[string]time.Duration{}
	for _, g := range []*gateway{proj, push} {
		waitStatus(t, g, "/readyz", 200, 30*time.Second)
		ready[g.cfg.Target] = time.Since(restartAt)
	}
	close(stop)
	<-done

	t.Logf("broker: SIGKILL after %d acknowledgements, first 503 %s after it, down for %s (until the restart began); first acknowledgement %s after the restart began; projector ready again within %s, pusher within %s",
		before, first503.Round(time.Millisecond), downFor.Round(time.Millisecond), firstAck.Sub(restartAt).Round(time.Millisecond),
		ready["projector"].Round(time.Millisecond), ready["pusher"].Round(time.Millisecond))
	l.check(t, a2.natsURL)
	if l.unavailableCount() == 0 {
		t.Error("no 503 while the broker was down: the fault was not seen by the clients")
	}

	last := streamLastSeq(t, a2.natsURL)
	waitApplied(t, b, last, 1, 45*time.Second, a2, proj, push)
	l.checkReadable(t, b)

	// The pusher delivers what is sent after the restart.
	title := "after the broker restart " + randomHex(t, 4)
	postOK(t, b, "/message", map[string]any{"channel_id": probe.ID, "password": probe.Password, "title": title})
	pushedAt := time.Now()
	waitFor(t, "the push of a message sent after the restart", 45*time.Second, func() bool {
		for _, r := range fake.Requests() {
			if strings.Contains(string(r.Body), title) {
				return true
			}
		}
		return false
	}, a2, b, proj, push)
	t.Logf("pusher: a message sent after the restart was pushed within %s", time.Since(pushedAt).Round(time.Millisecond))
}

// TestProjectorPause: the projector process is stopped (SIGSTOP) for 10 s
// under a steady write load and continued: writes are acknowledged all
// along, and once it runs again it catches up by itself: it folds to the
// log's last sequence, its reads include the last acknowledged operation,
// and nothing acknowledged is lost.
func TestProjectorPause(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	proj := startProjector(t, a, t.TempDir())
	waitServed(t, a, 30*time.Second, proj)
	c := chanCred{Password: "pause-" + randomHex(t, 8)}
	c.ID = createChannel(t, a, "pause", c.Password)

	l := newFaultLoad(a, c, "pause")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, 3, stop)
	}()
	defer func() {
		_ = proj.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	waitFor(t, "200 acknowledgements before the pause", 30*time.Second, func() bool { return l.ackCount() >= 200 }, a, proj)
	pausedSeq := streamLastSeq(t, a.natsURL)
	if err := proj.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	// Writes go on for the pause.
	waitFor(t, "acknowledgements during the pause", 30*time.Second, func() bool {
		return time.Since(pausedAt) >= 10*time.Second && l.acksAfter(pausedAt) >= 100
	}, a)
	duringPause := l.acksAfter(pausedAt)
	// Reads while it is stopped: whatever they answer, it is a clean
	// answer, 200 or 503 (never 500).
	readCode, readBody := getPathWithin(a, "/readyz", 10*time.Second)
	if readCode != 200 && readCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the projector is stopped: %d %s", readCode, readBody)
	}
	hr, herr := a.Do(ctx, http.MethodPost, "/channel/history", mustJSON(t, map[string]any{"channel_id": c.ID, "password": c.Password, "limit": 1}), nil)
	if herr != nil {
		t.Fatalf("history while the projector is stopped: %v", herr)
	}
	if hr.Status != 200 && hr.Status != http.StatusServiceUnavailable {
		t.Errorf("history while the projector is stopped: %s", hr)
	}
	t.Logf("while stopped: /readyz %d %.200s; history %.200s", readCode, readBody, hr)
	if err := proj.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumedAt := time.Now()
	pause := resumedAt.Sub(pausedAt)
	close(stop)
	<-done

	l.check(t, a.natsURL)
	last := streamLastSeq(t, a.natsURL)
	waitApplied(t, a, last, 1, 45*time.Second, proj)
	caughtUp := time.Since(resumedAt)
	t.Logf("projector: stopped at about sequence %d for %s; %d operations acknowledged meanwhile; /readyz %d and a history read %d while stopped; caught up to sequence %d %s after SIGCONT",
		pausedSeq, pause.Round(time.Millisecond), duringPause, readCode, hr.Status, last, caughtUp.Round(time.Millisecond))
	l.checkReadable(t, a)
}

// getPathWithin is one GET of path of g bounded by d: status and body (0
// and the error when there was no answer).
func getPathWithin(g *gateway, path string, d time.Duration, hdr ...http.Header) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var h http.Header
	if len(hdr) > 0 {
		h = hdr[0]
	}
	r, err := g.Do(ctx, http.MethodGet, path, nil, h)
	if err != nil {
		return 0, err.Error()
	}
	return r.Status, string(r.Body)
}

// TestPoisonedLogEntry: in the middle of a write load, an entry that is
// not an operation is appended to PUSHGO_OPS (as the admin role may).
// The projector process sets it aside and folds on: every acknowledged
// operation after it is readable, /deadletters on its ops port lists the
// entry's sequence, and no valid operation is skipped.
func TestPoisonedLogEntry(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	// /deadletters is listed to the gateway token's holder only.
	const opsToken = "poison-ops-token"
	proj := startProjector(t, a, t.TempDir(), "PUSHGO_TOKEN="+opsToken)
	waitServed(t, a, 30*time.Second, proj)
	c := chanCred{Password: "poison-" + randomHex(t, 8)}
	c.ID = createChannel(t, a, "poison", c.Password)

	l := newFaultLoad(a, c, "poison")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, 3, stop)
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	waitFor(t, "200 acknowledgements before the poisoned entry", 30*time.Second, func() bool { return l.ackCount() >= 200 }, a, proj)
	js := dialJS(t, a.natsURL)
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	ack, err := js.js.Publish(pctx, "pushgo.op.0000000000000000000000BAD0.thing.broken", []byte("not json {"))
	pcancel()
	if err != nil {
		t.Fatalf("publish the poisoned entry: %v", err)
	}
	poisonedAt := time.Now()
	waitFor(t, "200 acknowledgements after the poisoned entry", 30*time.Second, func() bool { return l.acksAfter(poisonedAt) >= 200 }, a, proj)
	close(stop)
	<-done

	l.check(t, a.natsURL)
	last := streamLastSeq(t, a.natsURL)
	waitApplied(t, a, last, 1, 45*time.Second, proj)
	t.Logf("projector: poisoned entry at sequence %d; folded to the last sequence %d %s after it was appended",
		ack.Sequence, last, time.Since(poisonedAt).Round(time.Millisecond))
	l.checkReadable(t, a)

	code, body := getPathWithin(proj, "/deadletters", 5*time.Second, http.Header{"Authorization": {"Bearer " + opsToken}})
	if code != 200 || !strings.Contains(body, `"total":1`) || !strings.Contains(body, `"stream":"PUSHGO_OPS"`) ||
		!strings.Contains(body, `"seq":`+strconv.FormatUint(ack.Sequence, 10)+`,`) {
		t.Errorf("projector /deadletters: %d %s; want the one entry at sequence %d of PUSHGO_OPS", code, body, ack.Sequence)
	} else {
		t.Logf("projector /deadletters: %s", body)
	}
	if code, body := getPathWithin(proj, "/readyz", 5*time.Second); code != 200 {
		t.Errorf("projector /readyz after the poisoned entry: %d %s", code, body)
	}
}

// TestStoreFull: a gateway whose broker storage is tiny (PUSHGO_MAX_STORE
// 4 MiB) is filled by senders of 16 KiB messages: the write that does not
// fit answers 507 store_full (not 503, no Retry-After), /readyz answers
// 507 store_full; started again on the same data directory with a larger
// limit (the documented remedy), it is ready, every operation
// acknowledged before is in the log exactly once and readable, and
// writes succeed again.
func TestStoreFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g1 := startGateway(t, gwConfig{DataDir: dir, Env: []string{"PUSHGO_MAX_STORE=4194304"}})
	c := chanCred{Password: "store-full-" + randomHex(t, 8)}
	c.ID = createChannel(t, g1, "store-full", c.Password)

	l := newFaultLoad(g1, c, "full")
	filler := strings.Repeat("A", 16000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var refused *apiResp
	start := time.Now()
	for n := 0; n < 1000 && refused == nil; n++ {
		op := fmt.Sprintf("full-%d", n)
		r, err := g1.Do(ctx, http.MethodPost, "/message", mustJSON(t, map[string]any{
			"channel_id": c.ID, "password": c.Password, "op_id": op, "title": "filler", "ciphertext": filler,
		}), nil)
		if err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
		l.sent++
		l.attempts++
		switch r.Status {
		case http.StatusOK:
			mustOK(t, r, messageKeys...)
			l.acked = append(l.acked, op)
		case http.StatusInsufficientStorage:
			refused = r
		default:
			t.Fatalf("message %d before the store is full: %s", n, r)
		}
	}
	if refused == nil {
		t.Fatal("1000 messages of 16 KiB fit a 4 MiB store")
	}
	mustFail(t, refused, http.StatusInsufficientStorage, "store_full")
	if ra := refused.Header.Get("Retry-After"); ra != "" {
		t.Errorf("store_full answer has Retry-After %s: a retry cannot succeed", ra)
	}
	filledIn := time.Since(start)
	ready := waitStatus(t, g1, "/readyz", http.StatusInsufficientStorage, 20*time.Second)
	if !strings.Contains(ready, `"error_code":"store_full"`) {
		t.Errorf("/readyz with the store full: %s", ready)
	}
	t.Logf("store full after %d acknowledged 16 KiB messages (%s); the next answered %d %s; /readyz: %.300s",
		len(l.acked), filledIn.Round(time.Millisecond), refused.Status, refused.Envelope.Code(), ready)
	if err := g1.terminate(); err != nil {
		t.Fatalf("%s did not stop cleanly with its store full: %v", g1.name, err)
	}

	restartAt := time.Now()
	g2 := startGateway(t, gwConfig{DataDir: dir, Env: []string{"PUSHGO_MAX_STORE=67108864"}})
	l.g = g2
	for range 20 {
		if !l.one(ctx, fmt.Sprintf("full-after-%s", randomHex(t, 4))) {
			t.Fatal("writes after the restart were not acknowledged in time")
		}
	}
	t.Logf("restarted with a 64 MiB limit: ready and 20 writes acknowledged %s after the restart began", time.Since(restartAt).Round(time.Millisecond))
	l.check(t, g2.natsURL)
	waitApplied(t, g2, streamLastSeq(t, g2.natsURL), 1, 30*time.Second)
	l.checkReadable(t, g2)
}

// TestIngestSIGKILL: an ingest-only process (the broker is another
// process's) is killed with SIGKILL under a steady write load and started
// again on its address; the clients, which got no answer meanwhile, retry
// with the same op_id: every acknowledged operation is in the log exactly
// once (none twice, although one in flight at the kill may have been
// appended before it and is sent again), and the projector's reads
// include the last one.
func TestIngestSIGKILL(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	proj := startProjector(t, a, t.TempDir())
	dirB := t.TempDir()
	b := startGateway(t, gwConfig{DataDir: dirB, Target: "ingest", NATSURL: a.natsURL})
	waitServed(t, b, 30*time.Second, a, proj)
	c := chanCred{Password: "ingest-kill-" + randomHex(t, 8)}
	c.ID = createChannel(t, b, "ingest-kill", c.Password)

	l := newFaultLoad(b, c, "ikill")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, 3, stop)
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	waitFor(t, "200 acknowledgements before the kill", 30*time.Second, func() bool { return l.ackCount() >= 200 }, a, b, proj)
	before := l.ackCount()
	b.kill()
	restartAt := time.Now()
	b2 := startGateway(t, gwConfig{DataDir: dirB, Target: "ingest", NATSURL: a.natsURL, HTTPAddr: hostPort(b.base)})
	waitFor(t, "100 acknowledgements after the restart", 45*time.Second, func() bool { return l.acksAfter(restartAt) >= 100 }, a, b2, proj)
	firstAck := l.firstAckAfter(restartAt)
	close(stop)
	<-done

	l.mu.Lock()
	unanswered := l.noAnswer
	l.mu.Unlock()
	t.Logf("ingest: SIGKILL after %d acknowledgements; %d requests unanswered; first acknowledgement %s after the restart began",
		before, unanswered, firstAck.Sub(restartAt).Round(time.Millisecond))
	if unanswered == 0 {
		t.Error("no request went unanswered: the kill did not happen under load")
	}
	l.check(t, a.natsURL)
	waitApplied(t, a, streamLastSeq(t, a.natsURL), 1, 45*time.Second, b2, proj)
	l.checkReadable(t, b2)
}
