package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdempotentRetryAcrossRestart retries a create with the seed's op_id
// after a restart (spec §1, idempotency): the same body answers the same
// data and appends nothing; a different body is 409 op_id_conflict.
func TestIdempotentRetryAcrossRestart(t *testing.T) {
	t.Parallel()
	const opID = "op-20260422-001" // the op_id of the seed 000 response
	dataDir := t.TempDir()
	password := "retry-across-restart"

	g1 := startGateway(t, gwConfig{DataDir: dataDir})
	ch := createChannel(t, g1, "home", password)
	// Seed 000's create body with an op_id added.
	body := seedBody(t, "000_event_create.json", map[string]string{seedChannel: ch, seedPassword: password})
	body = bytes.Replace(body, []byte("{\n"), []byte("{\n\"op_id\": \""+opID+"\",\n"), 1)

	first := mustOK(t, g1.Post(t, "/event/create", body), eventKeys...)
	if first["op_id"] != opID || first["channel_id"] != ch {
		t.Fatalf("create answered %v, want op_id %s channel_id %s", first, opID, ch)
	}
	eventID := str(t, first, "event_id")
	if !hex32.MatchString(eventID) {
		t.Fatalf("event_id %q is not 32 lowercase hex", eventID)
	}
	if err := g1.terminate(); err != nil {
		t.Errorf("pushgo did not stop cleanly on SIGTERM: %v", err)
	}

	g2 := startGateway(t, gwConfig{DataDir: dataDir})
	again := mustOK(t, g2.Post(t, "/event/create", body), eventKeys...)
	if !maps.Equal(again, first) {
		t.Errorf("retry after restart answered %v, want the first answer %v", again, first)
	}

	changed := bytes.Replace(body, []byte(`"Deployment started"`), []byte(`"Deployment started again"`), 1)
	if bytes.Equal(changed, body) {
		t.Fatal("test bug: the body was not changed")
	}
	mustFail(t, g2.Post(t, "/event/create", changed), http.StatusConflict, "op_id_conflict")

	// The conflict changed nothing: the original still replays.
	if third := mustOK(t, g2.Post(t, "/event/create", body), eventKeys...); !maps.Equal(third, first) {
		t.Errorf("retry after the conflict answered %v, want %v", third, first)
	}

	msgs := readOps(t, g2.natsURL)
	creates := 0
	for _, m := range msgs {
		if m.Op == "event.create" && m.OpID == opID {
			creates++
			if m.EntityID != eventID {
				t.Errorf("the create is logged for event %q, answered %q", m.EntityID, eventID)
			}
		}
	}
	if creates != 1 || len(msgs) != 1 {
		t.Errorf("PUSHGO_OPS holds %d operations with %d creates of op_id %s; want exactly one create and nothing else", len(msgs), creates, opID)
	}
}

// TestGeneratedMessageOpIDSentBack: a /message without an op_id is
// answered with the op_id the gateway generated, and its message is kept on
// the channel's messages subject, not a subject of its own. A sender that
// sends the same message back with that op_id (after a restart, so no
// process remembers it, and after the message's ttl passed) gets the first
// answer and appends nothing; with another body it gets 409 op_id_conflict.
// A new message with that ttl is refused 400 ttl_expired.
func TestGeneratedMessageOpIDSentBack(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	password := "generated-op-id"
	g1 := startGateway(t, gwConfig{DataDir: dataDir})
	ch := createChannel(t, g1, "home", password)
	ttl := time.Now().Add(2 * time.Second).UnixMilli()
	msg := map[string]any{"channel_id": ch, "password": password, "title": "Backup finished", "body": "412 GB in 38 min", "severity": "low", "ttl": ttl}
	first := mustOK(t, g1.Post(t, "/message", mustJSON(t, msg)), messageKeys...)
	opID := str(t, first, "op_id")
	if !hex32.MatchString(opID) {
		t.Fatalf("generated op_id %q is not 32 lowercase hex", opID)
	}
	if err := g1.terminate(); err != nil {
		t.Errorf("pushgo did not stop cleanly on SIGTERM: %v", err)
	}

	g2 := startGateway(t, gwConfig{DataDir: dataDir})
	for time.Now().UnixMilli() <= ttl {
		time.Sleep(time.Until(time.UnixMilli(ttl + 1)))
	}
	late := map[string]any{"channel_id": ch, "password": password, "title": "Backup finished", "ttl": ttl}
	mustFail(t, g2.Post(t, "/message", mustJSON(t, late)), http.StatusBadRequest, "ttl_expired")
	msg["op_id"] = opID
	again := mustOK(t, g2.Post(t, "/message", mustJSON(t, msg)), messageKeys...)
	for _, k := range []string{"channel_id", "op_id", "message_id"} {
		if again[k] != first[k] {
			t.Errorf("sent back with its op_id: %s %v, want the first answer's %v", k, again[k], first[k])
		}
	}
	msg["body"] = "412 GB in 39 min"
	mustFail(t, g2.Post(t, "/message", mustJSON(t, msg)), http.StatusConflict, "op_id_conflict")

	msgs := readOps(t, g2.natsURL)
	if len(msgs) != 1 || msgs[0].OpID != opID || msgs[0].EntityID != first["message_id"] {
		var held []string
		for _, m := range msgs {
			held = append(held, fmt.Sprintf("%d %s %s %s", m.Seq, m.Subject, m.Op, m.OpID))
		}
		t.Fatalf("PUSHGO_OPS holds %d operations %q; want the one message %s", len(msgs), held, first["message_id"])
	}
	if want := "pushgo.op." + ch + ".message"; msgs[0].Subject != want {
		t.Errorf("the message is on %q, want its channel's messages subject %q", msgs[0].Subject, want)
	}
}

// TestGeneratedUpdateOpIDSentBack: an update sent without an op_id is
// appended without a message id, so the broker's duplicate window does not
// know the op_id the gateway generated for it. A sender that sends it back
// with that op_id (what a 503 names as problem.op_id) after a later update
// gets the first answer and appends nothing (it was appended again, and the
// event went back to its content); after the event's close it gets the
// first answer too, not 409 event_closed for an update that is in the log.
func TestGeneratedUpdateOpIDSentBack(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	password := "generated-update"
	ch := createChannel(t, g, "deploys", password)
	post := func(path string, kv ...any) map[string]any {
		t.Helper()
		m := map[string]any{"channel_id": ch, "password": password}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return mustOK(t, g.Post(t, path, mustJSON(t, m)), eventKeys...)
	}
	ev := str(t, post("/event/create", "title", "deploy", "status", "running", "message", "started",
		"severity", "normal", "event_time", 1713750000), "event_id")
	first := post("/event/update", "event_id", ev, "status", "running", "message", "step 1", "severity", "normal", "event_time", 1713750001)
	opID := str(t, first, "op_id")
	if !hex32.MatchString(opID) {
		t.Fatalf("generated op_id %q is not 32 lowercase hex", opID)
	}
	post("/event/update", "event_id", ev, "status", "running", "message", "step 2", "severity", "normal", "event_time", 1713750002)
	again := post("/event/update", "op_id", opID, "event_id", ev, "status", "running", "message", "step 1", "severity", "normal", "event_time", 1713750001)
	post("/event/close", "event_id", ev, "status", "done", "message", "finished", "severity", "normal", "event_time", 1713750003)
	closed := post("/event/update", "op_id", opID, "event_id", ev, "status", "running", "message", "step 1", "severity", "normal", "event_time", 1713750001)
	for name, a := range map[string]map[string]any{"after a later update": again, "after the close": closed} {
		if a["op_id"] != opID || a["event_id"] != ev {
			t.Errorf("sent back %s: %v, want the first answer %v", name, a, first)
		}
	}
	// The same on an event closed right after the update, no retry in
	// between (the duplicate window does not know its op_id either).
	ev2 := str(t, post("/event/create", "title", "deploy 2", "status", "running", "message", "started",
		"severity", "normal", "event_time", 1713750010), "event_id")
	opID2 := str(t, post("/event/update", "event_id", ev2, "status", "running", "message", "step 1", "severity", "normal", "event_time", 1713750011), "op_id")
	post("/event/close", "event_id", ev2, "status", "done", "message", "finished", "severity", "normal", "event_time", 1713750012)
	if a := post("/event/update", "op_id", opID2, "event_id", ev2, "status", "running", "message", "step 1", "severity", "normal",
		"event_time", 1713750011); a["op_id"] != opID2 {
		t.Errorf("sent back after the close: %v", a)
	}
	var held []string
	for _, m := range readOps(t, g.natsURL) {
		held = append(held, m.Op+" "+m.OpID)
	}
	all := strings.Join(held, ",")
	if len(held) != 7 || strings.Count(all, opID) != 1 || strings.Count(all, opID2) != 1 {
		t.Fatalf("PUSHGO_OPS holds %q; want per event the create, the update sent back once, (a second update,) the close", held)
	}
}
