package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreamHasEveryAcknowledgedOpAndNoSecrets sends a mix of operations to
// a private gateway (some concurrently, some rejected) and reads PUSHGO_OPS
// back: every 200 is there exactly once, nothing else is, and neither the
// channel password nor the bearer token is in the log, the channel
// registry or the process's output.
func TestStreamHasEveryAcknowledgedOpAndNoSecrets(t *testing.T) {
	t.Parallel()
	token := "tok-" + randomHex(t, 24)
	password := "pw-" + randomHex(t, 12)
	wrongPassword := "wrongpw-" + randomHex(t, 12)
	secrets := map[string]string{"channel password": password, "PUSHGO_TOKEN": token, "wrong password": wrongPassword}

	// Debug logging: the most the gateway ever writes about a request.
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Token: token, LogLevel: "debug"})
	ch := createChannel(t, g, "ops-mix", password)

	var (
		mu       sync.Mutex
		okOps    []string              // op_ids of every 200 of a write route
		okEntity = map[string]string{} // op_id -> entity id answered
	)
	record := func(r *apiResp, keys []string, idKey string) (string, error) {
		data, err := okData(r, keys...)
		if err != nil {
			return "", err
		}
		op, _ := data["op_id"].(string)
		id, _ := data[idKey].(string)
		if op == "" || !hex32.MatchString(id) {
			return "", fmt.Errorf("bad op_id/%s in %s", idKey, r)
		}
		mu.Lock()
		okOps = append(okOps, op)
		okEntity[op] = id
		mu.Unlock()
		return id, nil
	}
	body := func(fields map[string]any) []byte {
		m := map[string]any{"channel_id": ch, "password": password}
		for k, v := range fields {
			m[k] = v
		}
		return mustJSON(t, m)
	}
	post := func(ctx context.Context, path string, b []byte) (*apiResp, error) {
		return g.Do(ctx, http.MethodPost, path, b, nil)
	}

	// Four concurrent senders, each with its own event, thing and messages.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) { errs <- fmt.Errorf("sender %d: %w", w, err) }
			n := 0
			step := func(path string, b []byte, keys []string, idKey string) string {
				// As a real client: every operation carries an op_id, and a
				// 503 (an append that timed out on a loaded machine) is sent
				// again with the same op_id until it is answered.
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					fail(err)
					return ""
				}
				if _, ok := m["op_id"]; !ok {
					n++
					m["op_id"] = fmt.Sprintf("mix-%d-step-%d", w, n)
					b = mustJSON(t, m)
				}
				r, err := post(ctx, path, b)
				for err == nil && r.Status == http.StatusServiceUnavailable && ctx.Err() == nil {
					time.Sleep(200 * time.Millisecond)
					r, err = post(ctx, path, b)
				}
				if err != nil {
					fail(err)
					return ""
				}
				id, err := record(r, keys, idKey)
				if err != nil {
					fail(err)
				}
				return id
			}
			now := int64(1713750000000) + int64(w)*1000
			ev := step("/event/create", body(map[string]any{
				"title": fmt.Sprintf("job %d", w), "status": "running", "message": "started", "severity": "normal",
				"event_time": now, "op_id": fmt.Sprintf("mix-%d-create", w), "attrs": map[string]any{"worker": w},
			}), eventKeys, "event_id")
			if ev == "" {
				return
			}
			for i := range 5 {
				step("/event/update", body(map[string]any{
					"event_id": ev, "status": "running", "message": fmt.Sprintf("step %d", i), "severity": "low",
					"event_time": now + int64(i+1)*100, "attrs": map[string]any{"progress": float64(i) / 5},
				}), eventKeys, "event_id")
			}
			step("/event/close", body(map[string]any{
				"event_id": ev, "status": "success", "message": "done", "severity": "normal", "event_time": now + 1000,
			}), eventKeys, "event_id")
			th := step("/thing/create", body(map[string]any{
				"title": fmt.Sprintf("sensor %d", w), "observed_at": now, "location_type": "logical", "location_value": "Home/Sensors",
				"external_ids": map[string]any{"Serial": fmt.Sprintf("SN-%d", w)},
			}), thingKeys, "thing_id")
			if th == "" {
				return
			}
			step("/thing/update", body(map[string]any{"thing_id": th, "observed_at": now + 10, "attrs": map[string]any{"t": 21.5}}), thingKeys, "thing_id")
			step("/message", body(map[string]any{"title": "hi", "thing_id": th, "occurred_at": now + 20}), append([]string{"thing_id"}, messageKeys...), "message_id")
			step("/thing/archive", body(map[string]any{"thing_id": th, "observed_at": now + 30}), thingKeys, "thing_id")
			step("/thing/delete", body(map[string]any{"thing_id": th, "observed_at": now + 40}), thingKeys, "thing_id")
			step("/message", body(map[string]any{"title": fmt.Sprintf("note %d", w), "op_id": fmt.Sprintf("mix-%d-msg", w)}), messageKeys, "message_id")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// GET /message carries the password in the query string.
	q := url.Values{"channel_id": {ch}, "password": {password}, "title": {"via GET"}, "tags": {"a,b"}}
	if _, err := record(g.Get(t, "/message?"+q.Encode(), nil), messageKeys, "message_id"); err != nil {
		t.Fatal(err)
	}

	// Rejections: none of them may reach the log.
	mustFail(t, g.Post(t, "/event/create", mustJSON(t, map[string]any{
		"channel_id": ch, "password": wrongPassword, "title": "x", "status": "s", "message": "m", "severity": "normal", "event_time": 1,
	})), http.StatusForbidden, "password_mismatch")
	qWrong := url.Values{"channel_id": {ch}, "password": {wrongPassword}, "title": {"wrong"}}
	mustFail(t, g.Get(t, "/message?"+qWrong.Encode(), nil), http.StatusForbidden, "password_mismatch")
	mustFail(t, g.Post(t, "/event/update", body(map[string]any{
		"event_id": "no-such-event", "status": "s", "message": "m", "severity": "normal", "event_time": 1,
	})), http.StatusNotFound, "event_not_found")
	mustFail(t, g.Post(t, "/event/create", body(map[string]any{
		"title": "x", "status": "s", "message": "m", "severity": "urgent", "event_time": 1,
	})), http.StatusBadRequest, "invalid_severity")
	ctxW, cancelW := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelW()
	r, err := g.Do(ctxW, http.MethodPost, "/message", body(map[string]any{"title": "bad token"}),
		http.Header{"Authorization": {"Bearer " + token + "x"}})
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, r, http.StatusUnauthorized, "authentication_failed")

	// The log: exactly the acknowledged operations, once each.
	msgs := readOps(t, g.natsURL)
	if len(msgs) != len(okOps) {
		t.Errorf("PUSHGO_OPS holds %d messages; the gateway answered 200 to %d operations", len(msgs), len(okOps))
	}
	idx := byOpID(msgs)
	for _, op := range okOps {
		switch got := idx[op]; {
		case len(got) != 1:
			t.Errorf("acknowledged op_id %s appears %d times in PUSHGO_OPS, want exactly 1", op, len(got))
		case got[0].EntityID != okEntity[op]:
			t.Errorf("op_id %s: logged entity_id %q, answered %q", op, got[0].EntityID, okEntity[op])
		}
	}
	for _, m := range msgs {
		if m.ChannelID != ch || !strings.Contains(m.Subject, ch) {
			t.Errorf("seq %d: channel %q subject %q, want channel %s", m.Seq, m.ChannelID, m.Subject, ch)
		}
		for what, s := range secrets {
			if bytes.Contains(m.Data, []byte(s)) || strings.Contains(m.Subject, s) {
				t.Errorf("seq %d (%s): the %s is in the message data or subject", m.Seq, m.Op, what)
			}
			for k, vs := range m.Header {
				for _, v := range vs {
					if strings.Contains(k, s) || strings.Contains(v, s) {
						t.Errorf("seq %d (%s): the %s is in header %s", m.Seq, m.Op, what, k)
					}
				}
			}
		}
	}

	// The channel registry keeps a salted hash only (spec §1, password).
	for _, m := range readStream(t, g.natsURL, channelsStream) {
		for what, s := range secrets {
			if bytes.Contains(m.Data, []byte(s)) {
				t.Errorf("%s seq %d: the %s is stored in clear", channelsStream, m.Sequence, what)
			}
		}
	}

	// The process's own output, after a graceful stop so everything is flushed.
	if err := g.terminate(); err != nil {
		t.Errorf("pushgo did not stop cleanly on SIGTERM: %v", err)
	}
	out := g.output.String()
	if out == "" {
		t.Error("pushgo wrote no log at debug level; the secrets check would be vacuous")
	}
	for what, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the %s appears in pushgo's log output", what)
		}
		if e := url.QueryEscape(s); e != s && strings.Contains(out, e) {
			t.Errorf("the %s appears (query-escaped) in pushgo's log output", what)
		}
	}
	t.Logf("%d acknowledged operations, %d in PUSHGO_OPS, %d bytes of log checked", len(okOps), len(msgs), len(out))
}
