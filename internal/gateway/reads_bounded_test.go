package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/apitest"
	schemaids "github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// bigText is n bytes of text that differ with i (so no two items are
// equal and nothing compresses them away).
func bigText(i, n int) string {
	s := strings.Repeat(fmt.Sprintf("%06d-", i), n/7+1)
	return s[:n]
}

// readPages pages a list route (cursor) or /channel/history (after) with
// limit (0: the default) until has_more is false, and returns the items'
// raw JSON in the order received. It fails t on any answer but 200, on a
// page that says has_more but holds no item, or one that does not move on.
func readPages(t *testing.T, base, path, cred string, limit int) (items []map[string]any, pages int) {
	t.Helper()
	cursor, after := "", uint64(0)
	for {
		body := "{" + cred
		if limit > 0 {
			body += fmt.Sprintf(`,"limit":%d`, limit)
		}
		if path == "/channel/history" {
			body += fmt.Sprintf(`,"after":%d`, after)
		} else if cursor != "" {
			body += `,"cursor":"` + cursor + `"`
		}
		body += "}"
		r := apitest.New(base).Post(t, path, body)
		if r.Status != 200 {
			t.Fatalf("%s page %d (limit %d): status %d: %.300s", path, pages+1, limit, r.Status, r.Body)
		}
		var ans struct {
			Data struct {
				Items      []map[string]any `json:"items"`
				HasMore    bool             `json:"has_more"`
				NextCursor string           `json:"next_cursor"`
				NextAfter  uint64           `json:"next_after"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &ans, json.RejectUnknownMembers(false)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pages++
		d := ans.Data
		if limit > 0 && len(d.Items) > limit || limit == 0 && len(d.Items) > 100 {
			t.Fatalf("%s: %d items in a page of limit %d", path, len(d.Items), limit)
		}
		items = append(items, d.Items...)
		if !d.HasMore {
			return items, pages
		}
		if len(d.Items) == 0 {
			t.Fatalf("%s: page %d has_more with no item", path, pages)
		}
		if path == "/channel/history" {
			if d.NextAfter <= after {
				t.Fatalf("history: next_after %d does not move on from %d", d.NextAfter, after)
			}
			after = d.NextAfter
		} else {
			if d.NextCursor == "" || d.NextCursor == cursor {
				t.Fatalf("%s: next_cursor %q does not move on from %q", path, d.NextCursor, cursor)
			}
			cursor = d.NextCursor
		}
		if pages > 10000 {
			t.Fatalf("%s: no end", path)
		}
	}
}

// TestHistoryOfLargeMessagesPages is the regression test of issue 12's
// first row: a channel of messages as large as a request body allows
// (~32 KiB each, 4 MiB in all) is read back through /channel/history at
// the default and the maximum limit: every message comes back once, in
// log order, over pages the gateway cuts by size (before, any page over
// the broker's 1 MiB max_payload was 503 read_unavailable for good).
func TestHistoryOfLargeMessagesPages(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"big","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	const n = 130 // more than the default limit
	var ids []string
	for i := range n {
		body := `{` + cred + `,"title":"m` + fmt.Sprint(i) + `","body":"` + bigText(i, wire.MaxBodyBytes-300) + `"}`
		if len(body) > wire.MaxBodyBytes {
			t.Fatalf("body of %d bytes", len(body))
		}
		s, _, m := post(t, base, "/message", body)
		ids = append(ids, data(t, s, m)["message_id"].(string))
	}
	for _, limit := range []int{0, 1000} {
		items, pages := readPages(t, base, "/channel/history", cred, limit)
		if len(items) != n {
			t.Fatalf("limit %d: %d items back, want %d", limit, len(items), n)
		}
		last := 0.0
		for i, it := range items {
			if it["entity_id"] != ids[i] {
				t.Fatalf("limit %d: item %d is %v, want %s (every item once, in order)", limit, i, it["entity_id"], ids[i])
			}
			if seq := it["seq"].(float64); seq <= last {
				t.Fatalf("limit %d: seq %v after %v", limit, seq, last)
			}
			last = it["seq"].(float64)
			body := it["payload"].(map[string]any)["body"]
			if body != bigText(i, wire.MaxBodyBytes-300) {
				t.Fatalf("limit %d: item %d body differs", limit, i)
			}
		}
		t.Logf("limit %d: %d items in %d pages", limit, n, pages)
	}
}

// TestThingsWithLargeAttrsPage: /channel/things (by id and through the
// state index) and /channel/events over entities whose attrs are as large
// as a request allows come back whole, once each, in id order, at the
// default and the maximum limit.
func TestThingsWithLargeAttrsPage(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"attrs","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	const n = 110
	big := func(i int) string { return bigText(i, wire.MaxBodyBytes-400) }
	blobOf := map[string]string{} // entity id -> its attrs' blob
	var things, events []string
	for i := range n {
		s, _, m := post(t, base, "/thing/create", fmt.Sprintf(`{%s,"title":"t","observed_at":1713750000000,"attrs":{"blob":"%s"}}`, cred, big(i)))
		id := data(t, s, m)["thing_id"].(string)
		things, blobOf[id] = append(things, id), big(i)
		s, _, m = post(t, base, "/event/create", fmt.Sprintf(`{%s,"title":"e","status":"open","message":"m","severity":"high","event_time":1713750000,"attrs":{"blob":"%s"}}`, cred, big(n+i)))
		id = data(t, s, m)["event_id"].(string)
		events, blobOf[id] = append(events, id), big(n+i)
	}
	slices.Sort(things)
	slices.Sort(events)
	for _, path := range []string{"/channel/things", "/channel/events"} {
		for _, state := range []string{"", "active", "ONGOING"} {
			if state == "active" && path != "/channel/things" || state == "ONGOING" && path != "/channel/events" {
				continue
			}
			c := cred
			if state != "" {
				c += `,"state":"` + state + `"`
			}
			for _, limit := range []int{0, 1000} {
				items, pages := readPages(t, base, path, c, limit)
				if len(items) != n {
					t.Fatalf("%s state %q limit %d: %d items, want %d", path, state, limit, len(items), n)
				}
				idKey, want := "thing_id", things
				if path == "/channel/events" {
					idKey, want = "event_id", events
				}
				for i, it := range items {
					if it[idKey] != want[i] {
						t.Fatalf("%s limit %d: item %d is %v, want %s (every item once, in id order)", path, limit, i, it[idKey], want[i])
					}
					if it["attrs"].(map[string]any)["blob"] != blobOf[want[i]] {
						t.Fatalf("%s limit %d: item %d attrs differ", path, limit, i)
					}
				}
				t.Logf("%s state %q limit %d: %d items in %d pages", path, state, limit, n, pages)
			}
		}
	}
}

// TestSnapshotLargerThanMaxPayload: a Thing larger than the broker's
// max_payload is still answered by /thing/get, whole, and /channel/things
// pages over it (a page of that one item) to the things after it. No
// route's body makes one since merged attrs are bounded (fold.MaxAttrsBytes):
// its 900 KB description is put in the log as a larger integration body or
// an older gateway's operation could be, and 8 updates of ~30 KB new attrs
// each (240 KB) take it past max_payload.
func TestSnapshotLargerThanMaxPayload(t *testing.T) {
	base, g := startAllGateway(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"huge","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	var ids []string
	for range 3 {
		s, _, m := post(t, base, "/thing/create", `{`+cred+`,"title":"t","observed_at":1713750000000}`)
		ids = append(ids, data(t, s, m)["thing_id"].(string))
	}
	slices.Sort(ids)
	huge := ids[1] // the middle one grows
	description := bigText(-1, 900_000)
	payload, err := json.Marshal(ops.ThingPayload{ThingID: huge, ObservedAt: 1713750000000, Description: description})
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(ops.Envelope{V: ops.EnvelopeVersion, Op: ops.ThingUpdate, ChannelID: ch, EntityID: huge,
		OpID: schemaids.NewOpID(), AcceptedAt: 1713750000000, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), streams.OpSubject(ch, ops.KindThing, huge), env); err != nil {
		t.Fatal(err)
	}
	const updates = 8
	for i := range updates {
		s, _, m := post(t, base, "/thing/update", fmt.Sprintf(`{%s,"thing_id":"%s","observed_at":%d,"attrs":{"k%02d":"%s"}}`,
			cred, huge, 1713750000001+i, i, bigText(i, wire.MaxBodyBytes-400)))
		data(t, s, m)
	}
	r := apitest.New(base).Post(t, "/thing/get", `{`+cred+`,"thing_id":"`+huge+`"}`)
	if r.Status != 200 {
		t.Fatalf("/thing/get of a %d-update thing: %d %.300s", updates, r.Status, r.Body)
	}
	if len(r.Body) <= 1<<20 {
		t.Fatalf("the snapshot is %d bytes: not over max_payload, the test proves nothing", len(r.Body))
	}
	snap := data(t, r.Status, r.Object(t))
	if snap["description"] != description {
		t.Fatal("the description is missing or different")
	}
	attrs := snap["attrs"].(map[string]any)
	for i := range updates {
		if attrs[fmt.Sprintf("k%02d", i)] != bigText(i, wire.MaxBodyBytes-400) {
			t.Fatalf("attr k%02d missing or different", i)
		}
	}
	for _, limit := range []int{0, 1, 1000} {
		items, _ := readPages(t, base, "/channel/things", cred, limit)
		var got []string
		for _, it := range items {
			got = append(got, it["thing_id"].(string))
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("limit %d: things %v, want %v", limit, got, ids)
		}
	}
}
