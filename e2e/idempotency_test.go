package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
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
