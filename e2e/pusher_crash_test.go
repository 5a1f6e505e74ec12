package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// TestPusherSIGKILLLosesNoTask is the acceptance check of the pusher's
// delivery guarantee: two pusher replicas share the fan-out and sender
// consumers; each (operation, device) is sent once, and a SIGKILL of one
// replica mid-load loses no task.
//
// Process A is an ingest with the embedded broker; P1 and P2 are pushers
// connected to it. Each pusher sends to its own FakeFCM in the test process
// (same credentials, same answers), so every push the provider sees is
// attributed to the replica that sent it. Every answer is delayed 5-20 ms,
// so P1 has sends in flight when it is killed.
//
// At-least-once is the contract: a task P1 sent but never acknowledged is
// redelivered to P2 after the ack wait (SendTimeout + 20 s = 30 s) and sent
// again. Such a duplicate must be a redelivery of the same task (the same
// delivery id, "<op seq>:<device_key>"), never a second task, and there can
// be only a few of them (see maxDup).
func TestPusherSIGKILLLosesNoTask(t *testing.T) {
	t.Parallel()
	const (
		devicesN  = 20
		messagesN = 100
		clients   = 4
		killAt    = messagesN / 2 // acknowledged messages before the kill
		tasksN    = messagesN * devicesN
		// maxDup bounds the pairs pushed twice. A pair is pushed again only
		// when P1 sent its task and the acknowledgement never reached the
		// broker. P1 sends one task per lane at a time (a device's tasks go
		// through one lane), so at the kill at most devicesN sends are in
		// flight; at most one more task per lane can have just been answered
		// with its ack still in P1's write buffer (the next send takes at
		// least 5 ms, far longer than the NATS client takes to flush).
		maxDup = 2 * devicesN
		bound  = 60 * time.Second // from the kill to every task settled
	)
	t0 := time.Now()
	creds := fcmCredentials(t)
	fakes := [2]*sendertest.FakeFCM{sendertest.NewFakeFCM(t), sendertest.NewFakeFCM(t)}
	suffix := randomHex(t, 4)
	tokens := make([]string, devicesN)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("fcm-crash-%02d-%s", i, suffix)
	}
	// Enough delayed answers for every push of every token, redeliveries
	// included; past them the fakes answer OK at once.
	for i, f := range fakes {
		scriptLatency(f, tokens, 3*messagesN, 5*time.Millisecond, 20*time.Millisecond, uint64(i+1))
	}

	a := startIngest(t)
	p1 := startPusher(t, a, creds, fakes[0])
	p2 := startPusher(t, a, creds, fakes[1])
	bc := dialJS(t, a.natsURL)
	bc.waitPullers(t, 2, 30*time.Second, p1, p2)

	okOrFatal := func(r *apiResp) map[string]any {
		t.Helper()
		data, err := okAny(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	password := "pusher-crash-" + randomHex(t, 8)
	ch := createChannel(t, a, "pusher-crash", password)
	devOf := map[string]string{} // provider token -> device key
	for _, tok := range tokens {
		dev := str(t, okOrFatal(a.Post(t, "/device/register", mustJSON(t, map[string]any{"platform": "android"}))), "device_key")
		okOrFatal(a.Post(t, "/channel/device", mustJSON(t, map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": tok})))
		okOrFatal(a.Post(t, "/channel/subscribe", mustJSON(t, map[string]any{"device_key": dev, "channel_id": ch, "password": password})))
		devOf[tok] = dev
	}
	setup := time.Since(t0)

	// Load: clients send the messages; the test kills P1 once half are
	// acknowledged and P1 has pushed.
	opIDs := make([]string, messagesN)
	for i := range opIDs {
		opIDs[i] = fmt.Sprintf("pusher-crash-%s-%03d", suffix, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		acked   atomic.Int64
		errMu   sync.Mutex
		sendErr []string
		wg      sync.WaitGroup
	)
	loadStart := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := c; i < messagesN && ctx.Err() == nil; i += clients {
				r, err := a.Do(ctx, http.MethodPost, "/message", mustJSON(nil, map[string]any{
					"channel_id": ch, "password": password, "op_id": opIDs[i],
					"title": fmt.Sprintf("message %d", i), "body": "pusher crash test",
				}), nil)
				if err == nil {
					var data map[string]any
					if data, err = okData(r, messageKeys...); err == nil && data["op_id"] != opIDs[i] {
						err = fmt.Errorf("answered op_id %v: %s", data["op_id"], r)
					}
				}
				if err != nil {
					errMu.Lock()
					sendErr = append(sendErr, fmt.Sprintf("message %s: %v", opIDs[i], err))
					errMu.Unlock()
					return
				}
				acked.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	for acked.Load() < killAt || len(fakes[0].Requests()) == 0 {
		if ctx.Err() != nil {
			wg.Wait()
			t.Fatalf("no kill point: %d messages acknowledged, P1 pushed %d, P2 pushed %d; errors %v",
				acked.Load(), len(fakes[0].Requests()), len(fakes[1].Requests()), sendErr)
		}
		failIfExited(t, []*gateway{a, p1, p2})
		time.Sleep(2 * time.Millisecond)
	}
	ackedAtKill := acked.Load()
	p1AtKill, p2AtKill := len(fakes[0].Requests()), len(fakes[1].Requests())
	killedAt := time.Now()
	p1.kill()
	wg.Wait()
	errMu.Lock()
	for _, e := range sendErr {
		t.Errorf("load: %s", e)
	}
	errMu.Unlock()
	if n := acked.Load(); n != messagesN {
		t.Fatalf("%d of %d messages acknowledged", n, messagesN)
	}
	t.Logf("setup %s; SIGKILL of P1 %s into the load, after %d of %d messages were acknowledged, with %d pushes sent by P1 and %d by P2 (of %d)",
		setup.Round(time.Millisecond), killedAt.Sub(loadStart).Round(time.Millisecond), ackedAtKill, messagesN, p1AtKill, p2AtKill, tasksN)
	if p1AtKill+p2AtKill >= tasksN {
		t.Fatal("every task was pushed before the kill; the test did not kill mid-load")
	}

	// The expected delivery id of every pair comes from the log.
	seqOf := map[string]uint64{}
	for op, msgs := range byOpID(readOps(t, a.natsURL)) {
		if len(msgs) != 1 {
			t.Fatalf("op_id %s appears %d times in %s", op, len(msgs), opsStream)
		}
		seqOf[op] = msgs[0].Seq
	}
	type pair struct{ op, token string }
	wantID := func(p pair) string { return fmt.Sprintf("%d:%s", seqOf[p.op], devOf[p.token]) }
	for _, op := range opIDs {
		if _, ok := seqOf[op]; !ok {
			t.Fatalf("acknowledged op_id %s is not in %s", op, opsStream)
		}
	}

	// copies returns the delivery ids each replica's provider received for
	// each pair.
	copies := func() map[pair][2][]string {
		out := map[pair][2][]string{}
		for r, f := range fakes {
			for _, tok := range tokens {
				for _, o := range f.Received(tok) {
					p := pair{o.Data["op_id"], tok}
					c := out[p]
					c[r] = append(c[r], o.Data["delivery_id"])
					out[p] = c
				}
			}
		}
		return out
	}
	missing := func(got map[pair][2][]string) []pair {
		var out []pair
		for _, op := range opIDs {
			for _, tok := range tokens {
				if c := got[pair{op, tok}]; len(c[0])+len(c[1]) == 0 {
					out = append(out, pair{op, tok})
				}
			}
		}
		return out
	}

	// Wait until every pair was pushed and nothing is left to do: both
	// consumers have nothing pending or unacknowledged (so no operation can
	// be expanded again and no task redelivered later), the work queue is
	// empty and every receipt is recorded.
	var (
		got      map[pair][2][]string
		state    string
		settled  bool
		allAt    time.Duration // every pair pushed at least once
		deadline = killedAt.Add(bound)
	)
	for {
		got = copies()
		lost := missing(got)
		if len(lost) == 0 && allAt == 0 {
			allAt = time.Since(killedAt)
		}
		settled, state = len(lost) == 0, fmt.Sprintf("%d pairs not pushed", len(lost))
		qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, sc := range [][2]string{{opsStream, fanoutConsumer}, {deliveriesStream, senderConsumer}} {
			info, err := bc.consumerInfo(qctx, sc[0], sc[1])
			switch {
			case err != nil || info == nil:
				settled, state = false, fmt.Sprintf("%s, consumer %s: %v", state, sc[1], err)
			default:
				state += fmt.Sprintf(", %s pending %d ack-pending %d redelivered %d", sc[1], info.NumPending, info.NumAckPending, info.NumRedelivered)
				settled = settled && info.NumPending == 0 && info.NumAckPending == 0
			}
		}
		for _, s := range []struct {
			name string
			want uint64
		}{{deliveriesStream, 0}, {receiptsStream, messagesN + tasksN}} {
			st, err := bc.streamState(qctx, s.name)
			switch {
			case err != nil:
				settled, state = false, fmt.Sprintf("%s, %s: %v", state, s.name, err)
			default:
				state += fmt.Sprintf(", %s holds %d", s.name, st.Msgs)
				settled = settled && st.Msgs == s.want
			}
		}
		qcancel()
		if settled || time.Now().After(deadline) {
			break
		}
		failIfExited(t, []*gateway{a, p2})
		time.Sleep(200 * time.Millisecond)
	}
	settleAt := time.Since(killedAt)
	if !settled {
		lost := missing(got)
		for i, p := range lost {
			if i == 10 {
				t.Errorf("... and %d more", len(lost)-10)
				break
			}
			t.Errorf("task lost: op_id %s (delivery %s) never pushed to %s", p.op, wantID(p), p.token)
		}
		t.Fatalf("not settled %s after the kill: %s", bound, state)
	}

	// Every pair was pushed once by a replica, or by P1 and again by P2
	// carrying the same delivery id: a redelivery of the same task.
	var dups []string
	perReplica := [2]int{}
	for p, c := range got {
		if !slices.Contains(opIDs, p.op) {
			t.Errorf("%s received a push of op_id %q the test never sent: %v", p.token, p.op, c)
			continue
		}
		want := wantID(p)
		for r, ids := range c {
			perReplica[r] += len(ids)
			if len(ids) > 1 {
				t.Errorf("P%d pushed op_id %s to %s %d times %v: a live replica sends a task once", r+1, p.op, p.token, len(ids), ids)
			}
			for _, id := range ids {
				if id != want {
					t.Errorf("P%d pushed op_id %s to %s with delivery_id %q, want %q: a second task for the pair", r+1, p.op, p.token, id, want)
				}
			}
		}
		if len(c[0]) > 0 && len(c[1]) > 0 {
			dups = append(dups, want)
		}
	}
	slices.Sort(dups)
	if len(dups) > maxDup {
		t.Errorf("%d pairs pushed twice, more than the %d P1 could have had in flight: %v", len(dups), maxDup, dups)
	}

	// The work queue stored exactly one task per pair: an operation P1 took
	// and P2 expanded again after the kill added none.
	st, err := bc.streamState(context.Background(), deliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	if st.Msgs != 0 || st.LastSeq != tasksN {
		t.Errorf("%s ends with %d tasks queued, %d stored in all; want 0 queued, %d stored (one per pair)", deliveriesStream, st.Msgs, st.LastSeq, tasksN)
	}

	// Every task ended with one "sent" receipt; every operation was expanded
	// once into one task per device.
	redelivered, expanded := 0, 0
	outcomes := map[string]receipt{}
	for _, r := range readReceipts(t, a.natsURL) {
		switch r.Kind {
		case "expanded":
			expanded++
			if r.Tasks != devicesN || seqOf[r.OpID] != r.Seq {
				t.Errorf("expanded receipt %+v: want %d tasks at seq %d", r, devicesN, seqOf[r.OpID])
			}
		case "outcome":
			if _, dup := outcomes[r.DeliveryID]; dup {
				t.Errorf("two outcome receipts for delivery %s", r.DeliveryID)
			}
			outcomes[r.DeliveryID] = r
			if r.Outcome != "sent" || r.Provider != "fcm" || !strings.HasSuffix(r.DeliveryID, ":"+r.DeviceKey) {
				t.Errorf("outcome receipt %+v: want sent through fcm", r)
			}
			if r.Attempts > 1 {
				redelivered++
			}
		default:
			t.Errorf("receipt of unknown kind: %+v", r)
		}
	}
	if expanded != messagesN {
		t.Errorf("%d expanded receipts, want %d", expanded, messagesN)
	}
	for _, op := range opIDs {
		for _, tok := range tokens {
			if _, ok := outcomes[wantID(pair{op, tok})]; !ok {
				t.Errorf("no outcome receipt for delivery %s (op_id %s)", wantID(pair{op, tok}), op)
			}
		}
	}
	if len(dups) == 0 && redelivered == 0 {
		t.Error("no task was redelivered: P1 held no unacknowledged task when it was killed")
	}
	t.Logf("every pair pushed %s after the kill, all settled after %s; P1 pushed %d, P2 pushed %d (%d pairs); "+
		"%d pairs pushed twice (P1 then P2, same delivery id), %d tasks ended after more than one delivery",
		allAt.Round(time.Millisecond), settleAt.Round(time.Millisecond), perReplica[0], perReplica[1], tasksN,
		len(dups), redelivered)
	if len(dups) > 0 {
		t.Logf("pushed twice: %v", dups)
	}
}
