package e2e

import (
	"bytes"
	"maps"
	"net/http"
	"testing"
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
