package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
)

// Placeholders of the seed documents.
const (
	seedChannel  = "YOUR_CHANNEL_ID"
	seedPassword = "YOUR_CHANNEL_PASSWORD"
	seedEntityID = "8a1fc4b3d9f04fd2857f92f66f7cc5d1" // event_id in 000/001, thing_id in 002
	seedThingID  = "3b7fd2e87d7d4d6d9c7f3a318ac21f02" // thing_id of the thing-linked event
)

// TestSeedDocuments sends the seed documents' curl bodies as a user would,
// with only the channel, the password and the returned ids substituted,
// and checks the documented answers and what was appended.
func TestSeedDocuments(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	const password = "correct-horse-battery-staple"
	ch := createChannel(t, g, "home", password)
	creds := map[string]string{seedChannel: ch, seedPassword: password}
	with := func(kv ...string) map[string]string {
		m := map[string]string{seedChannel: ch, seedPassword: password}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	// accepted collects every 200 of a write route: op_id -> entity id.
	accepted := map[string]string{}
	var acceptedOrder []string
	send := func(path string, body []byte, keys []string, idKey string) map[string]any {
		t.Helper()
		data := mustOK(t, g.Post(t, path, body), keys...)
		if got := str(t, data, "channel_id"); got != ch {
			t.Fatalf("%s: data.channel_id %q, want %q", path, got, ch)
		}
		opID, id := str(t, data, "op_id"), str(t, data, idKey)
		if !hex32.MatchString(opID) { // no op_id was sent: the gateway generates 32 hex
			t.Fatalf("%s: generated op_id %q is not 32 lowercase hex", path, opID)
		}
		if !hex32.MatchString(id) {
			t.Fatalf("%s: %s %q is not 32 lowercase hex", path, idKey, id)
		}
		if _, dup := accepted[opID]; dup {
			t.Fatalf("%s: op_id %q returned twice", path, opID)
		}
		accepted[opID] = id
		acceptedOrder = append(acceptedOrder, opID)
		return data
	}
	event := func(path string, body []byte) string {
		t.Helper()
		return str(t, send(path, body, eventKeys, "event_id"), "event_id")
	}
	thing := func(path string, body []byte) string {
		t.Helper()
		return str(t, send(path, body, thingKeys, "thing_id"), "thing_id")
	}

	// Seed 000: an event's whole lifecycle.
	ev := event("/event/create", seedBody(t, "000_event_create.json", creds))
	createOp := acceptedOrder[len(acceptedOrder)-1]
	if got := event("/event/update", seedBody(t, "000_event_update.json", with(seedEntityID, ev))); got != ev {
		t.Fatalf("/event/update answered event_id %q, want %q", got, ev)
	}
	if got := event("/event/close", seedBody(t, "000_event_close.json", with(seedEntityID, ev))); got != ev {
		t.Fatalf("/event/close answered event_id %q, want %q", got, ev)
	}
	closeOp := acceptedOrder[len(acceptedOrder)-1]

	t.Run("closed event is 409 event_closed", func(t *testing.T) {
		mustFail(t, g.Post(t, "/event/update", seedBody(t, "000_event_update.json", with(seedEntityID, ev))), http.StatusConflict, "event_closed")
		mustFail(t, g.Post(t, "/event/close", seedBody(t, "000_event_close.json", with(seedEntityID, ev))), http.StatusConflict, "event_closed")
	})
	t.Run("unknown event is 404 event_not_found", func(t *testing.T) {
		// The seed's example event_id was never created on this channel.
		mustFail(t, g.Post(t, "/event/update", seedBody(t, "000_event_update.json", creds)), http.StatusNotFound, "event_not_found")
		mustFail(t, g.Post(t, "/event/close", seedBody(t, "000_event_close.json", creds)), http.StatusNotFound, "event_not_found")
	})

	// Seed 001 (Chinese text); event_time and started_at in seconds, which
	// seed 001 allows; the update sends a string of digits (spec §1).
	secondsBody := bytes.ReplaceAll(seedBody(t, "001_event_create.json", creds), []byte("1713750000000"), []byte("1713750000"))
	evCN := event("/event/create", secondsBody)
	secondsOp := acceptedOrder[len(acceptedOrder)-1]
	stringBody := bytes.ReplaceAll(seedBody(t, "001_event_update.json", with(seedEntityID, evCN)), []byte("1713750300000"), []byte(`"1713750300"`))
	event("/event/update", stringBody)
	stringOp := acceptedOrder[len(acceptedOrder)-1]
	event("/event/close", seedBody(t, "001_event_close.json", with(seedEntityID, evCN)))

	// A linked event needs an existing thing.
	t.Run("event linked to an unknown thing is 404 thing_not_found", func(t *testing.T) {
		mustFail(t, g.Post(t, "/event/create", seedBody(t, "000_event_thing_linked.json", creds)), http.StatusNotFound, "thing_not_found")
	})

	// Seed 002: the thing's lifecycle, with the seed 000/001 linked events
	// and a linked message while it exists.
	nas := thing("/thing/create", seedBody(t, "002_thing_create.json", creds))
	thingCreateOp := acceptedOrder[len(acceptedOrder)-1]
	lag := event("/event/create", seedBody(t, "000_event_thing_linked.json", with(seedThingID, nas)))
	lagOp := acceptedOrder[len(acceptedOrder)-1]
	event("/event/create", seedBody(t, "001_event_thing_linked.json", with(seedThingID, nas)))
	if lag == ev || lag == evCN {
		t.Fatalf("two creates answered the same event_id %q", lag)
	}
	for _, step := range []struct{ path, seed string }{
		{"/thing/update", "002_thing_update.json"},
		{"/thing/archive", "002_thing_archive.json"},
	} {
		if got := thing(step.path, seedBody(t, step.seed, with(seedEntityID, nas))); got != nas {
			t.Fatalf("%s answered thing_id %q, want %q", step.path, got, nas)
		}
	}
	// "An update re-activates" an archived thing; the attrs null removes a key (seed 002).
	removeKey := mustJSON(t, map[string]any{
		"channel_id": ch, "password": password, "thing_id": nas, "observed_at": 1713751500000,
		"attrs": map[string]any{"temporary_alarm": nil},
	})
	thing("/thing/update", removeKey)

	// POST /message linked to the thing ("one disk failed on the NAS").
	linkedMsg := send("/message", mustJSON(t, map[string]any{
		"channel_id": ch, "password": password, "thing_id": nas, "occurred_at": 1713751600000,
		"title": "Disk failed", "body": "Disk **sdb** failed on the NAS", "severity": "critical",
	}), append([]string{"thing_id"}, messageKeys...), "message_id")
	if linkedMsg["thing_id"] != nas {
		t.Fatalf("/message data.thing_id %v, want %q", linkedMsg["thing_id"], nas)
	}

	if got := thing("/thing/delete", seedBody(t, "002_thing_delete.json", with(seedEntityID, nas))); got != nas {
		t.Fatalf("/thing/delete answered thing_id %q, want %q", got, nas)
	}

	t.Run("deleted thing is 409 thing_deleted", func(t *testing.T) {
		for _, c := range []struct{ path, seed string }{
			{"/thing/update", "002_thing_update.json"},
			{"/thing/archive", "002_thing_archive.json"},
			{"/thing/delete", "002_thing_delete.json"},
		} {
			mustFail(t, g.Post(t, c.path, seedBody(t, c.seed, with(seedEntityID, nas))), http.StatusConflict, "thing_deleted")
		}
		mustFail(t, g.Post(t, "/event/create", seedBody(t, "000_event_thing_linked.json", with(seedThingID, nas))), http.StatusConflict, "thing_deleted")
		mustFail(t, g.Post(t, "/message", mustJSON(t, map[string]any{
			"channel_id": ch, "password": password, "thing_id": nas, "occurred_at": 1713752000000, "title": "after delete",
		})), http.StatusConflict, "thing_deleted")
	})
	t.Run("unknown thing is 404 thing_not_found", func(t *testing.T) {
		mustFail(t, g.Post(t, "/thing/update", seedBody(t, "002_thing_update.json", creds)), http.StatusNotFound, "thing_not_found")
	})

	// Messages: GET with query parameters (as PushGo) and POST.
	q := url.Values{}
	q.Set("channel_id", ch)
	q.Set("password", password)
	q.Set("title", "Backup finished")
	q.Set("body", "Nightly backup took *42 min*")
	q.Set("severity", "low")
	q.Set("tags", "backup,nas")
	q.Set("metadata", `{"job":"nightly","size_gb":120}`)
	q.Set("url", "https://example.com/backups/1")
	getMsg := mustOK(t, g.Get(t, "/message?"+q.Encode(), nil), messageKeys...)
	getMsgOp := str(t, getMsg, "op_id")
	for _, k := range []string{"op_id", "message_id"} {
		if !hex32.MatchString(str(t, getMsg, k)) {
			t.Fatalf("GET /message: %s %q is not 32 lowercase hex", k, getMsg[k])
		}
	}
	if getMsg["channel_id"] != ch {
		t.Fatalf("GET /message: channel_id %v, want %q", getMsg["channel_id"], ch)
	}
	accepted[getMsgOp] = str(t, getMsg, "message_id")
	acceptedOrder = append(acceptedOrder, getMsgOp)
	send("/message", mustJSON(t, map[string]any{
		"channel_id": ch, "password": password, "title": "Hello from e2e", "body": "plain **markdown**",
		"severity": "high", "tags": []string{"e2e", "e2e", " demo "}, "metadata": map[string]any{"build": 42, "ok": true},
	}), messageKeys, "message_id")

	// Everything answered 200 is in the log, once, and nothing else is.
	msgs := readOps(t, g.natsURL)
	if len(msgs) != len(acceptedOrder) {
		t.Errorf("PUSHGO_OPS holds %d operations, the gateway answered 200 to %d", len(msgs), len(acceptedOrder))
	}
	idx := byOpID(msgs)
	for _, op := range acceptedOrder {
		got := idx[op]
		if len(got) != 1 {
			t.Errorf("op_id %s appears %d times in PUSHGO_OPS, want 1", op, len(got))
			continue
		}
		if got[0].EntityID != accepted[op] || got[0].ChannelID != ch {
			t.Errorf("op_id %s: logged entity %q channel %q, answered %q %q", op, got[0].EntityID, got[0].ChannelID, accepted[op], ch)
		}
		if bytes.Contains(got[0].Data, []byte(password)) {
			t.Errorf("op_id %s: the channel password is in the log", op)
		}
	}
	one := func(op string) opMsg {
		t.Helper()
		if len(idx[op]) != 1 {
			t.Fatalf("op_id %s not found exactly once in PUSHGO_OPS", op)
		}
		return idx[op][0]
	}

	t.Run("logged payloads", func(t *testing.T) {
		m := one(createOp)
		if m.Op != "event.create" || m.Payload["title"] != "Production deployment" || num(t, m.Payload, "event_time") != 1713750000000 {
			t.Errorf("seed 000 create logged as %s %s", m.Op, m.Data)
		}
		if m := one(closeOp); m.Op != "event.close" || num(t, m.Payload, "ended_at") != 1713750600000 || m.Payload["status"] != "success" {
			t.Errorf("seed 000 close logged as %s %s", m.Op, m.Data)
		}
		// Seconds are multiplied by 1000 (seed 001, spec §1 Timestamps).
		if m := one(secondsOp); num(t, m.Payload, "event_time") != 1713750000000 || num(t, m.Payload, "started_at") != 1713750000000 || m.Payload["title"] != "生产环境部署" {
			t.Errorf("event_time/started_at 1713750000 (seconds) logged as %s", m.Data)
		}
		if m := one(stringOp); num(t, m.Payload, "event_time") != 1713750300000 {
			t.Errorf(`event_time "1713750300" logged as %s`, m.Data)
		}
		if m := one(thingCreateOp); m.Op != "thing.create" || m.Payload["title"] != "Home NAS" ||
			m.Payload["location_type"] != "physical" || m.Payload["location_value"] != "home/living-room" {
			t.Errorf("seed 002 create logged as %s %s", m.Op, m.Data)
		}
		if m := one(lagOp); m.Payload["thing_id"] != nas || m.Payload["severity"] != "high" {
			t.Errorf("thing-linked event logged as %s", m.Data)
		}
		if m := one(getMsgOp); m.Op != "message.create" || m.Payload["title"] != "Backup finished" || m.Payload["severity"] != "low" {
			t.Errorf("GET /message logged as %s %s", m.Op, m.Data)
		} else if tags, _ := m.Payload["tags"].([]any); len(tags) != 2 || tags[0] != "backup" || tags[1] != "nas" {
			t.Errorf("GET /message tags=backup,nas logged as %v", m.Payload["tags"])
		}
	})
	t.Logf("%d operations accepted, %d logged", len(acceptedOrder), len(msgs))
}
