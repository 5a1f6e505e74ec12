package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSIGKILLLosesNothingAcknowledged kills pushgo with SIGKILL while
// several clients are writing, restarts it on the same data directory and
// checks that every operation answered 200 before the kill is in
// PUSHGO_OPS exactly once (spec §1: 200 means durably appended).
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	const (
		clients   = 4
		killAfter = 300 // acknowledgements before the kill
		maxPerCli = 5000
	)
	dataDir := t.TempDir()
	password := "crash-test-" + randomHex(t, 8)
	g1 := startGateway(t, gwConfig{DataDir: dataDir})
	ch := createChannel(t, g1, "crash", password)

	type ack struct{ opID, eventID string }
	var (
		mu        sync.Mutex
		acked     []ack
		firstEvts = make([]string, clients)
		unexpect  []string // non-200 answers: none is expected
		noAnswer  atomic.Int64
		inflight  atomic.Int64
		ackCount  atomic.Int64
		trigger   = make(chan struct{})
		once      sync.Once
	)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			current := ""
			for n := 0; n < maxPerCli && ctx.Err() == nil; n++ {
				path := "/event/update"
				fields := map[string]any{
					"channel_id": ch, "password": password, "severity": "normal",
					"status": "running", "message": fmt.Sprintf("client %d step %d", c, n),
					"event_time": 1713750000000 + int64(n),
				}
				if current == "" || n%5 == 0 {
					path = "/event/create"
					fields["title"] = fmt.Sprintf("deploy %d/%d", c, n)
					fields["op_id"] = fmt.Sprintf("kill-%d-create-%d", c, n)
				} else {
					fields["event_id"] = current
					fields["op_id"] = fmt.Sprintf("kill-%d-update-%d", c, n)
					fields["attrs"] = map[string]any{"progress": n}
				}
				b := mustJSON(t, fields)
				inflight.Add(1)
				r, err := g1.Do(ctx, http.MethodPost, path, b, nil)
				inflight.Add(-1)
				if err != nil {
					noAnswer.Add(1)
					return // the gateway is gone
				}
				data, derr := okData(r, eventKeys...)
				if derr != nil {
					mu.Lock()
					unexpect = append(unexpect, derr.Error())
					mu.Unlock()
					continue
				}
				id, _ := data["event_id"].(string)
				mu.Lock()
				acked = append(acked, ack{opID: fields["op_id"].(string), eventID: id})
				if firstEvts[c] == "" {
					firstEvts[c] = id
				}
				mu.Unlock()
				if data["op_id"] != fields["op_id"] {
					mu.Lock()
					unexpect = append(unexpect, fmt.Sprintf("op_id %v answered for %v", data["op_id"], fields["op_id"]))
					mu.Unlock()
				}
				if path == "/event/create" {
					current = id
				}
				if ackCount.Add(1) >= killAfter {
					once.Do(func() { close(trigger) })
				}
			}
		}()
	}

	select {
	case <-trigger:
	case <-ctx.Done():
		t.Fatalf("only %d acknowledgements before the deadline", ackCount.Load())
	}
	inflightAtKill := inflight.Load()
	g1.kill()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, u := range unexpect {
		t.Errorf("unexpected answer before the kill: %s", u)
	}
	t.Logf("SIGKILL after %d acks with %d requests in flight; %d acknowledged in all, %d requests got no answer",
		killAfter, inflightAtKill, len(acked), noAnswer.Load())
	if noAnswer.Load() == 0 {
		t.Fatal("no request was interrupted by the kill; the test did not kill under load")
	}

	// Same data directory, new process.
	g2 := startGateway(t, gwConfig{DataDir: dataDir})
	msgs := readOps(t, g2.natsURL)
	idx := byOpID(msgs)
	lost := 0
	for _, a := range acked {
		switch got := idx[a.opID]; {
		case len(got) == 0:
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged op_id %s is not in PUSHGO_OPS after SIGKILL", a.opID)
			}
		case len(got) > 1:
			t.Errorf("acknowledged op_id %s appears %d times in PUSHGO_OPS", a.opID, len(got))
		case got[0].EntityID != a.eventID:
			t.Errorf("op_id %s: logged event %q, answered %q", a.opID, got[0].EntityID, a.eventID)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged operations lost by SIGKILL", lost, len(acked))
	}
	for op, got := range idx {
		if len(got) > 1 {
			t.Errorf("op_id %s appears %d times in PUSHGO_OPS", op, len(got))
		}
	}
	t.Logf("PUSHGO_OPS after restart: %d operations (%d acknowledged, the rest were in flight)", len(msgs), len(acked))

	// The restarted gateway knows the events created before the kill.
	updates := 0
	for c, ev := range firstEvts {
		if ev == "" {
			continue
		}
		updates++
		r := g2.Post(t, "/event/update", mustJSON(t, map[string]any{
			"channel_id": ch, "password": password, "event_id": ev, "status": "recovered",
			"message": "after restart", "severity": "high", "event_time": 1713760000000,
		}))
		data := mustOK(t, r, eventKeys...)
		if data["event_id"] != ev {
			t.Errorf("client %d: update after restart answered event_id %v, want %s", c, data["event_id"], ev)
		}
	}
	after := readOps(t, g2.natsURL)
	if updates == 0 {
		t.Error("no event was created before the kill")
	}
	if len(after) != len(msgs)+updates {
		t.Errorf("after %d updates on the restarted gateway PUSHGO_OPS holds %d operations, want %d", updates, len(after), len(msgs)+updates)
	}
}
