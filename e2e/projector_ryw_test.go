package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestReadYourWritesAcrossProcesses runs ingest (with the broker) and the
// projector as two processes. 200 times, a write through the ingest is
// immediately followed by a read through the same ingest, which must
// already reflect it (spec §7: reads are served from the projections, and
// the gateway's read barrier makes a read see every write acknowledged
// before it).
func TestReadYourWritesAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	b := startProjector(t, a, t.TempDir())
	waitServed(t, a, 20*time.Second, b)

	c := chanCred{Password: "ryw-" + randomHex(t, 8)}
	c.ID = createChannel(t, a, "read-your-writes", c.Password)
	base := int64(1713750000000)

	write := func(path string, fields map[string]any) map[string]any {
		t.Helper()
		fields["channel_id"], fields["password"] = c.ID, c.Password
		return mustOK(t, a.Post(t, path, mustJSON(t, fields)), "channel_id", "op_id", path[1:6]+"_id", "accepted")
	}
	thing := &entity{Kind: "thing", Channel: c.ID, State: "active", Version: 1, LastOpID: "ryw-thing-create", Title: "boiler",
		Attrs: mergeAttrs(nil, map[string]any{"temp": 20, "site": map[string]any{"room": "cellar"}})}
	thing.ID = str(t, write("/thing/create", map[string]any{"op_id": thing.LastOpID, "title": thing.Title, "observed_at": base,
		"attrs": map[string]any{"temp": 20, "site": map[string]any{"room": "cellar"}}}), "thing_id")
	event := &entity{Kind: "event", Channel: c.ID, State: "ONGOING", Version: 1, LastOpID: "ryw-event-create", Title: "backup",
		Attrs: map[string]any{}}
	event.ID = str(t, write("/event/create", map[string]any{"op_id": event.LastOpID, "title": event.Title, "status": "open",
		"message": "started", "severity": "normal", "event_time": base}), "event_id")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var lastSeq uint64
	start := time.Now()
	for i := range 200 {
		e := thing
		patch := map[string]any{"i": i, "nested": map[string]any{"i": i, fmt.Sprintf("k%d", i%3): fmt.Sprintf("v%d", i)}}
		if i >= 2 {
			patch[fmt.Sprintf("p%d", i-2)] = nil // removes a key set two writes ago on this entity
			patch["nested"].(map[string]any)[fmt.Sprintf("k%d", (i+1)%3)] = nil
		}
		patch[fmt.Sprintf("p%d", i)] = true
		opID := fmt.Sprintf("ryw-%d", i)
		fields := map[string]any{"op_id": opID, "attrs": patch}
		path := "/thing/update"
		if i%2 == 1 {
			e, path = event, "/event/update"
			fields["event_id"], fields["status"], fields["message"] = event.ID, "running", fmt.Sprintf("step %d", i)
			fields["severity"], fields["event_time"] = "low", base+int64(i)
		} else {
			fields["thing_id"], fields["observed_at"] = thing.ID, base+int64(i)
		}
		write(path, fields)
		e.Version++
		e.LastOpID = opID
		e.Attrs = mergeAttrs(e.Attrs, patch)

		// No pause: the read goes out as soon as the 200 is in.
		snap, err := getSnapshot(ctx, a, c, e)
		if err == nil {
			err = checkSnapshot(e, snap)
		}
		if err != nil {
			t.Fatalf("write %d (%s %s) then read: %v", i, path, opID, err)
		}
		seq, _ := asUint(snap["last_seq"])
		if seq <= lastSeq {
			t.Fatalf("write %d: last_seq %d does not follow the previous write's %d", i, seq, lastSeq)
		}
		lastSeq = seq
	}
	t.Logf("200 write-then-read pairs in %s; last_seq %d", time.Since(start).Round(time.Millisecond), lastSeq)
	if want := streamLastSeq(t, a.natsURL); lastSeq != want {
		t.Errorf("the last read saw last_seq %d, the stream's last sequence is %d", lastSeq, want)
	}
}
