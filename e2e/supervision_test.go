package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// getPath is one GET of a process's path: status and body.
func getPath(t *testing.T, g *gateway, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := g.Do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return 0, err.Error()
	}
	return r.Status, string(r.Body)
}

// postOK posts body to path of g and returns the answer's data, failing
// the test unless it is a 200 success envelope.
func postOK(t *testing.T, g *gateway, path string, body map[string]any) map[string]any {
	t.Helper()
	return apitest.MustOK(t, g.Post(t, path, body)).Data
}

// waitStatus polls path of g until it answers want, and returns the body.
func waitStatus(t *testing.T, g *gateway, path string, want int, bound time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		code, body := getPath(t, g, path)
		if code == want {
			return body
		}
		last = fmt.Sprintf("%d %s", code, body)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s: not %d within %s (last: %s)", g.name, path, want, bound, last)
	return ""
}

// TestEveryTargetIsOperable: a projector-only and a pusher-only process
// serve /healthz, /readyz and /metrics with their own service's metrics.
func TestEveryTargetIsOperable(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	proj := startProjector(t, a, t.TempDir())
	push := startPusher(t, a, fcmCredentials(t), sendertest.NewFakeFCM(t).Endpoint())
	for _, c := range []struct {
		g      *gateway
		metric string
	}{{proj, "pushgo_projector_applied_sequence"}, {push, "pushgo_pusher_task_backlog"}} {
		if code, body := getPath(t, c.g, "/healthz"); code != 200 || !strings.Contains(body, `"alive":true`) {
			t.Errorf("%s /healthz: %d %s", c.g.cfg.Target, code, body)
		}
		body := waitStatus(t, c.g, "/readyz", 200, 20*time.Second)
		if !strings.Contains(body, `"ready":true`) {
			t.Errorf("%s /readyz: %s", c.g.cfg.Target, body)
		}
		code, body := getPath(t, c.g, "/metrics")
		if code != 200 || !strings.Contains(body, c.metric) || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s /metrics: %d, want %s and the Go runtime's metrics:\n%.2000s", c.g.cfg.Target, code, c.metric, body)
		}
		// Only this process's services: a pusher exports no projector metric.
		if c.g == push && strings.Contains(body, "pushgo_projector_") {
			t.Errorf("pusher /metrics exports projector metrics")
		}
	}
	// The API is ingest's: a projector-only process answers it with 404.
	if code, body := getPath(t, proj, "/channel/exists?channel_id=x"); code != 404 || !strings.Contains(body, "route_not_found") {
		t.Errorf("projector /channel/exists: %d %s", code, body)
	}
}

// TestConsumersRecreatedUnderRunningServices deletes the delivery
// partitions', the retry queue's and the fold consumers out from under
// running -target pusher and -target projector processes: each recreates
// its consumers as they were, and every operation appended afterwards is
// delivered and folded.
func TestConsumersRecreatedUnderRunningServices(t *testing.T) {
	t.Parallel()
	fake := sendertest.NewFakeFCM(t)
	a := startIngest(t)
	proj := startProjector(t, a, t.TempDir())
	push := startPusher(t, a, fcmCredentials(t), fake.Endpoint())
	for _, g := range []*gateway{proj, push} {
		waitStatus(t, g, "/readyz", 200, 20*time.Second)
	}
	bc := dialJS(t, a.natsURL)
	password := "recreate-" + randomHex(t, 8)
	ch := createChannel(t, a, "recreate", password)
	token := "fcm-recreate-" + randomHex(t, 4)
	dev := postOK(t, a, "/device/register", map[string]any{"platform": "android"})["device_key"].(string)
	postOK(t, a, "/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": token})
	postOK(t, a, "/channel/subscribe", map[string]any{"device_key": dev, "channel_id": ch, "password": password})

	send := func(title string) {
		postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": password, "title": title})
	}
	pushed := func(title string) bool {
		for _, r := range fake.Requests() {
			if strings.Contains(string(r.Body), title) {
				return true
			}
		}
		return false
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !cond() {
			failIfExited(t, []*gateway{a, proj, push})
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 45s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send("before-delete")
	waitUntil("the first message pushed", func() bool { return pushed("before-delete") })

	// Delete every consumer of the three streams: the pusher's durable ones
	// (the delivery partitions and the retry queue) and the projector's
	// ordered fold consumers.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deleted := 0
	for _, stream := range []string{opsStream, deliveriesStream, receiptsStream} {
		s, err := bc.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		names := s.ConsumerNames(ctx)
		var all []string
		for n := range names.Name() {
			all = append(all, n)
		}
		for _, n := range all {
			if err := s.DeleteConsumer(ctx, n); err != nil && err != jetstream.ErrConsumerNotFound {
				t.Fatalf("delete consumer %s on %s: %v", n, stream, err)
			}
			deleted++
		}
	}
	// The partitions, the retry queue, the folds of operations and of
	// receipts.
	if want := deliveryPartitions + 3; deleted < want {
		t.Fatalf("deleted %d consumers, want at least %d", deleted, want)
	}
	t.Logf("deleted %d consumers", deleted)

	const after = 20
	for i := range after {
		send(fmt.Sprintf("after-delete-%02d", i))
	}
	waitUntil("every message appended after the deletion pushed", func() bool {
		for i := range after {
			if !pushed(fmt.Sprintf("after-delete-%02d", i)) {
				return false
			}
		}
		return true
	})
	// A context of their own for the reads after the waits (the one above
	// may have run out while they waited).
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last, err := bc.streamState(ctx, opsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil("the projector folded every operation", func() bool {
		_, body := getPath(t, proj, "/readyz")
		return strings.Contains(body, fmt.Sprintf(`"projector_applied":%d`, last.LastSeq))
	})
	for _, g := range []*gateway{proj, push} {
		waitStatus(t, g, "/readyz", 200, 20*time.Second)
	}
	// Every partition is back as a pinned-priority, acknowledge-all
	// consumer of the group "pushers" (the one pusher owns them all).
	for i := range deliveryPartitions {
		info, err := bc.consumerInfo(ctx, opsStream, deliverConsumer(i))
		if err != nil || info == nil {
			t.Errorf("consumer %s not recreated: %v", deliverConsumer(i), err)
			continue
		}
		if c := info.Config; c.AckPolicy != jetstream.AckAllPolicy || c.PriorityPolicy != jetstream.PriorityPolicyPinned ||
			!slices.Equal(c.PriorityGroups, []string{deliveryGroup}) {
			t.Errorf("consumer %s recreated with ack policy %v, priority policy %v, groups %v; want AckAll, pinned, [%s]",
				deliverConsumer(i), c.AckPolicy, c.PriorityPolicy, c.PriorityGroups, deliveryGroup)
		}
	}
}

// TestAFullProjectionDiskKeepsTheProjection: a service that cannot go on
// ends the process. A projector whose disk takes no more writes (RLIMIT_FSIZE 0: EFBIG, as ENOSPC on a full disk) keeps
// its projection: it does not rebuild it (a rebuild on a full disk deleted
// the old projection, and with it the live entities whose operations had
// all left the log), it exits non-zero with one line that says the
// projection is kept and what to do, and started again on the same
// directory with room it goes on from where it was, without a rebuild,
// and serves every operation acknowledged before and during the failure.
func TestAFullProjectionDiskKeepsTheProjection(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	dir := t.TempDir()
	proj := startProjector(t, a, dir)
	waitStatus(t, proj, "/readyz", 200, 20*time.Second)
	ch := createChannel(t, a, "full-disk", "correct-horse")
	sent := 0
	send := func() {
		postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": "correct-horse", "title": fmt.Sprintf("message %d", sent)})
		sent++
	}
	for range 20 {
		send()
	}
	waitApplied(t, a, streamLastSeq(t, a.natsURL), 1, 30*time.Second, proj)
	if err := limitFileSize(proj.cmd.Process.Pid, 0); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("cannot limit the projector's file size on this system: %v", err)
	} else if err != nil {
		t.Fatalf("limit the projector's file size: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !proj.exited() && time.Now().Before(deadline) {
		send() // operations for the fold to commit
		time.Sleep(20 * time.Millisecond)
	}
	if !proj.exited() {
		t.Fatal("the projector did not exit within 30s of a disk that takes no more")
	}
	if proj.waitErr == nil {
		t.Fatal("the projector exited with status 0")
	}
	out := proj.output.String()
	if strings.Contains(out, "REBUILDING") || strings.Contains(out, "deleting the old one") {
		t.Fatalf("the projector rebuilt its projection on a full disk:\n%s", out)
	}
	var stopped []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "pushgo stopped") {
			stopped = append(stopped, line)
		}
	}
	if len(stopped) != 1 || !strings.Contains(stopped[0], "level=ERROR") || !strings.Contains(stopped[0], "nothing is lost") ||
		!strings.Contains(stopped[0], projectionDir(dir)) {
		t.Errorf("want one ERROR line 'pushgo stopped' saying the projection under %s is kept, got %q", projectionDir(dir), stopped)
	}
	if strings.Contains(out, "panic") {
		t.Errorf("the process panicked:\n%s", out)
	}

	again := startProjector(t, a, dir)
	last := streamLastSeq(t, a.natsURL)
	waitApplied(t, a, last, 1, 30*time.Second, again)
	if out := again.output.String(); strings.Contains(out, "REBUILDING") || strings.Contains(out, "folding it again") {
		t.Fatalf("started again with room, the projector rebuilt its projection:\n%s", out)
	}
	hist := postOK(t, a, "/channel/history", map[string]any{"channel_id": ch, "password": "correct-horse", "limit": 1000})
	items, _ := hist["items"].([]any)
	if len(items) != sent {
		t.Fatalf("history after the restart holds %d items, want the %d messages acknowledged", len(items), sent)
	}
	t.Logf("%d messages; exit: %v; %s", sent, proj.waitErr, stopped)
}

// TestBusyPortIsOneClearLine: `make run` twice. The second process finds
// its HTTP port taken: it exits non-zero with one line naming the port,
// never a panic.
func TestBusyPortIsOneClearLine(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	busy := strings.TrimPrefix(a.base, "http://")
	cmd := exec.Command(pushgoBin)
	cmd.Env = append(os.Environ(), "PUSHGO_DATA_DIR="+t.TempDir(), "PUSHGO_HTTP_ADDR="+busy, "PUSHGO_NATS_LISTEN=off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("second pushgo on %s exited 0:\n%s", busy, out)
	}
	if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Fatalf("second pushgo panicked:\n%s", out)
	}
	var errLines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "listen "+busy) || !strings.Contains(errLines[0], "address already in use") {
		t.Fatalf("want one ERROR line naming %s, got:\n%s", busy, out)
	}
}

// TestBinaryRunsOnePMoreThanTheCPUs: a gateway started without GOMAXPROCS
// runs one P more than the machine's CPUs (the harness sets GOMAXPROCS for
// every other process it starts; see runMain), and reports it on
// /metrics; under a CPU quota below the CPUs it keeps the runtime's
// default.
func TestBinaryRunsOnePMoreThanTheCPUs(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Env: []string{"GOMAXPROCS="}})
	// The runtime's default here (the CPUs, or a quota below them), whatever
	// GOMAXPROCS the tests themselves run with.
	prev := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(prev)
	want := def
	if def >= runtime.NumCPU() {
		want = def + 1
	}
	code, body := getPath(t, g, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	line := "\ngo_sched_gomaxprocs_threads " + strconv.Itoa(want) + "\n"
	if !strings.Contains(body, line) {
		got := "none"
		if i := strings.Index(body, "\ngo_sched_gomaxprocs_threads "); i >= 0 {
			got, _, _ = strings.Cut(body[i+1:], "\n")
		}
		t.Fatalf("/metrics reports %q, want %q (runtime default %d, %d CPUs)", got, strings.TrimSpace(line), def, runtime.NumCPU())
	}
}
