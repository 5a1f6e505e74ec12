package payload

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

const channel = "0Y3C8M5N2P6Q9R1S4T7V0W3X5Z"

var now = time.UnixMilli(1_780_000_000_000)

func env(t *testing.T, op ops.Name, id string, p any) ops.Envelope {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return ops.Envelope{V: 1, Op: op, ChannelID: channel, OpID: "op1", EntityID: id, AcceptedAt: now.UnixMilli() - 5, Payload: b}
}

func build(t *testing.T, e ops.Envelope, p Provider) Notification {
	t.Helper()
	n, err := Build(e, 42, "devkey", p, "tok", now)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSeverityTable(t *testing.T) {
	for sev, want := range map[string]struct {
		level   string
		prio    Priority
		android string
	}{
		"critical": {"critical", PriorityHigh, "high"},
		"high":     {"time-sensitive", PriorityHigh, "high"},
		"normal":   {"active", PriorityHigh, "high"},
		"low":      {"passive", PriorityNormal, "normal"},
	} {
		m, ok := MapSeverity(sev)
		if !ok || m.InterruptionLevel != want.level || m.Priority != want.prio || m.Priority.AndroidPriority() != want.android {
			t.Errorf("%s: %+v", sev, m)
		}
		n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: sev, OccurredAt: 1}), APNs)
		if n.InterruptionLevel != want.level || n.Priority != want.prio || n.Severity != sev || n.Data["severity"] != sev {
			t.Errorf("%s: built %+v", sev, n)
		}
	}
	if _, ok := MapSeverity("urgent"); ok {
		t.Errorf("unknown severity mapped")
	}
	n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "urgent", OccurredAt: 1}), APNs)
	if n.Severity != "normal" || n.InterruptionLevel != "active" {
		t.Errorf("unknown severity not treated as normal: %+v", n)
	}
}

// TestOperations: what each operation pushes. The visible texts, thread
// ids and the alert/background choice are PushGo's (gateway
// src/api/handlers/{event,thing}/, message/payload/custom.rs); the apps'
// reading of each key is checked at the providers by internal/deliveryflow.
func TestOperations(t *testing.T) {
	ev := ops.EventPayload{Title: "Deploy", Status: "running", Message: "step 2", Severity: "high", EventTime: 1000}
	th := ops.ThingPayload{Title: "NAS", ObservedAt: 2000, Attrs: jsontext.Value(`{"cpu":42,"name":"nas","gone":null,"disk":{"a":1}}`)}
	noTitle := ops.ThingPayload{ObservedAt: 2000, Attrs: th.Attrs}
	for _, c := range []struct {
		op         ops.Name
		p          any
		background bool
		prio       Priority
		collapse   string
		thread     string
		title      string
		body       string
		keys       map[string]string
		absent     []string
	}{
		{ops.MessageCreate, ops.MessagePayload{Title: "Hi", Body: "there", Severity: "low", OccurredAt: 3000, ThingID: "nas"},
			false, PriorityNormal, "", "message|channel=" + channel, "Hi", "there",
			map[string]string{"entity_type": "message", "message_id": "x1", "occurred_at": "3000", "thing_id": "nas",
				"title": "Hi", "body": "there", "severity": "low"}, nil},
		{ops.EventCreate, ev, false, PriorityHigh, "event:x1", "event|channel=" + channel + "|event=x1", "Deploy", "step 2",
			map[string]string{"entity_type": "event", "event_id": "x1", "event_state": "ONGOING", "event_time": "1000",
				"status": "running", "message": "step 2", "title": "Deploy", "body": "step 2", "severity": "high"},
			[]string{"message_id"}},
		// Without a title PushGo shows "Event <id>"; the map carries no
		// title, so the apps fall back to the event's stored one.
		{ops.EventUpdate, ops.EventPayload{Status: "ok", Message: "m", Severity: "normal", EventTime: 1}, false, PriorityHigh, "event:x1",
			"event|channel=" + channel + "|event=x1", "Event x1", "m",
			map[string]string{"event_state": "ONGOING", "body": "m"}, []string{"title"}},
		{ops.EventClose, ops.EventPayload{Status: "done", Message: "m", Severity: "critical", EventTime: 1, EndedAt: new(int64(5))}, false, PriorityHigh, "event:x1",
			"event|channel=" + channel + "|event=x1", "Event x1", "m",
			map[string]string{"event_state": "CLOSED", "ended_at": "5", "severity": "critical"}, nil},
		{ops.ThingCreate, th, false, PriorityHigh, "thing:x1", "thing|channel=" + channel + "|thing=x1", "创建: NAS",
			"Attribute update || name: nas, cpu: 42",
			map[string]string{"entity_type": "thing", "thing_id": "x1", "state": "active", "observed_at": "2000", "occurred_at": "2000",
				"title": "NAS", "attrs": string(th.Attrs)}, []string{"body", "severity"}},
		{ops.ThingUpdate, th, false, PriorityHigh, "thing:x1", "thing|channel=" + channel + "|thing=x1", "更新: NAS",
			"cpu=42\ndisk={\"a\":1}\ngone=null\nname=nas",
			map[string]string{"state": "active", "attrs": string(th.Attrs), "body": "cpu=42\ndisk={\"a\":1}\ngone=null\nname=nas"},
			[]string{"severity"}},
		// Without a title: the attrs' name, unlabelled (and in the map).
		{ops.ThingUpdate, noTitle, false, PriorityHigh, "thing:x1", "thing|channel=" + channel + "|thing=x1", "nas",
			"cpu=42\ndisk={\"a\":1}\ngone=null\nname=nas", map[string]string{"title": "nas"}, nil},
		{ops.ThingUpdate, ops.ThingPayload{ObservedAt: 1}, false, PriorityHigh, "thing:x1", "thing|channel=" + channel + "|thing=x1",
			"Object x1", "Updated", map[string]string{"attrs": "{}"}, []string{"title", "body"}},
		{ops.ThingArchive, ops.ThingPayload{ObservedAt: 1}, false, PriorityHigh, "thing:x1", "thing|channel=" + channel + "|thing=x1",
			"Object x1", "Updated", map[string]string{"state": "archived"}, nil},
		{ops.ThingDelete, ops.ThingPayload{Title: "NAS", Description: "gone for good", ObservedAt: 1, DeletedAt: new(int64(7))}, false, PriorityHigh, "thing:x1",
			"thing|channel=" + channel + "|thing=x1", "删除: NAS", "gone for good",
			map[string]string{"state": "deleted", "deleted_at": "7", "body": "gone for good"}, nil},
	} {
		for _, p := range []Provider{APNs, FCM} {
			n := build(t, env(t, c.op, "x1", c.p), p)
			collapse, prio := c.collapse, c.prio
			if p == FCM {
				collapse = "" // none on FCM (Build says why)
				// What the Android app does not show goes at normal
				// priority: a Thing, an Event below high.
				if ev, isEvent := c.p.(ops.EventPayload); c.op.Kind() == ops.KindThing || isEvent && ev.Severity != "high" && ev.Severity != "critical" {
					prio = PriorityNormal
				}
			}
			if n.Background != c.background || n.Priority != prio || n.CollapseID != collapse || n.ThreadID != c.thread ||
				n.Title != c.title || n.Body != c.body {
				t.Errorf("%s/%s: background=%v prio=%d collapse=%q thread=%q title=%q body=%q", c.op, p,
					n.Background, n.Priority, n.CollapseID, n.ThreadID, n.Title, n.Body)
			}
			for k, v := range c.keys {
				if n.Data[k] != v {
					t.Errorf("%s/%s: data[%s] = %q, want %q", c.op, p, k, n.Data[k], v)
				}
			}
			for _, k := range c.absent {
				if v, ok := n.Data[k]; ok {
					t.Errorf("%s/%s: data[%s] = %q, want none", c.op, p, k, v)
				}
			}
			for k, v := range map[string]string{
				"channel_id": channel, "schema_version": "1", "payload_version": "1", "op_id": "op1", "delivery_id": "42:devkey",
				"ingested_at": "1779999999995", "sent_at": "1780000000000", "entity_id": "x1",
				// The direct push's ack identity (with base_url, when set).
				"provider_device_key": "devkey",
			} {
				if n.Data[k] != v {
					t.Errorf("%s/%s: data[%s] = %q, want %q", c.op, p, k, n.Data[k], v)
				}
			}
			// The inbox's copy is the same but for the ack identity: a
			// pulled item is acked through its pull.
			direct := maps.Clone(n.Full)
			direct["provider_device_key"] = "devkey"
			if _, ok := n.Full["provider_device_key"]; ok || !maps.Equal(direct, n.Data) {
				t.Errorf("%s/%s: the inbox's copy is not the push's without provider_device_key: %v against %v", c.op, p, n.Full, n.Data)
			}
			if n.DeliveryID != "42:devkey" || n.Token != "tok" || n.Provider != p || n.Oversized {
				t.Errorf("%s/%s: %+v", c.op, p, n)
			}
		}
	}
}

// TestThingKeys: a thing push carries what PushGo's does (created_at,
// deleted_at, external_ids, location), which the Apple app reads as patches.
func TestThingKeys(t *testing.T) {
	v := "nas-01"
	n := build(t, env(t, ops.ThingCreate, "x1", ops.ThingPayload{ObservedAt: 1, CreatedAt: new(int64(9)),
		ExternalIDs: map[string]*string{"serial": &v, "old": nil}, LocationType: "physical", LocationValue: "home/rack"}), FCM)
	for k, want := range map[string]string{"created_at": "9", "external_ids": `{"old":null,"serial":"nas-01"}`,
		"location_type": "physical", "location_value": "home/rack", "location": `{"type":"physical","value":"home/rack"}`} {
		if n.Data[k] != want {
			t.Errorf("data[%s] = %q, want %q", k, n.Data[k], want)
		}
	}
}

func TestOptionalKeys(t *testing.T) {
	n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "normal", OccurredAt: 1}), FCM)
	for _, k := range []string{"ttl", "thing_id", "url", "images", "tags", "metadata", "ciphertext"} {
		if _, ok := n.Data[k]; ok {
			t.Errorf("absent %s is in the map", k)
		}
	}
	n = build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "normal", OccurredAt: 1,
		Images: []string{"https://x/a.png"}, Tags: []string{}, Metadata: jsontext.Value(`{"k":"v"}`), Ciphertext: "QUJD"}), FCM)
	for k, v := range map[string]string{"images": `["https://x/a.png"]`, "tags": `[]`, "metadata": `{"k":"v"}`, "ciphertext": "QUJD"} {
		if n.Data[k] != v {
			t.Errorf("data[%s] = %q, want %q", k, n.Data[k], v)
		}
	}
}

func TestExpiration(t *testing.T) {
	ttl := now.Add(time.Hour).UnixMilli()
	n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "normal", OccurredAt: 1, TTL: &ttl}), APNs)
	if !n.Expiration.Equal(time.UnixMilli(ttl)) || n.Data["ttl"] != "1780003600000" {
		t.Errorf("expiration %v, ttl %q", n.Expiration, n.Data["ttl"])
	}
	n = build(t, env(t, ops.EventCreate, "e", ops.EventPayload{Status: "s", Message: "m", Severity: "low", EventTime: 1}), APNs)
	if !n.Expiration.IsZero() {
		t.Errorf("an event has an expiration")
	}
	for _, past := range []int64{now.UnixMilli(), now.UnixMilli() - 1} {
		_, err := Build(env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "normal", OccurredAt: 1, TTL: &past}), 1, "d", APNs, "tok", now)
		if !errors.Is(err, ErrExpired) {
			t.Errorf("ttl %d: err %v, want ErrExpired", past, err)
		}
	}
}

func TestCollapseID(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, c := range []struct {
		kind       ops.Kind
		id         string
		background bool
	}{{ops.KindEvent, long, false}, {ops.KindThing, long, true}, {ops.KindEvent, strings.Repeat("b", 58), false}} {
		got := collapseID(c.kind, c.id, c.background)
		if len(got) > MaxCollapseIDBytes || !strings.HasPrefix(got, string(c.kind)+":") {
			t.Errorf("collapseID(%s, %d bytes) = %q", c.kind, len(c.id), got)
		}
		if got != collapseID(c.kind, c.id, c.background) || got == collapseID(c.kind, c.id+"x", c.background) {
			t.Errorf("collapse id not deterministic or not distinct: %q", got)
		}
	}
	if got := collapseID(ops.KindEvent, strings.Repeat("b", 58), false); got != "event:"+strings.Repeat("b", 58) {
		t.Errorf("a 64-byte id was hashed: %q", got)
	}
}

// TestOversizedWakeUpOfEscapedText: a title and a body of control
// characters, which JSON writes as six bytes each (and a wake-up carries
// title and preview twice), still make a wake-up within the provider's
// limit: its preview and title are shortened further. (FCM counts them a
// byte each: its body is past the limit by its length.)
func TestOversizedWakeUpOfEscapedText(t *testing.T) {
	for _, p := range []Provider{APNs, FCM} {
		n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: strings.Repeat("\x01", 256),
			Body: strings.Repeat("\x02", 4000), Severity: "high", OccurredAt: 1}), p)
		if !n.Oversized || n.Data["provider_wakeup"] != "1" {
			t.Fatalf("%s: not a wake-up", p)
		}
		if Size(n) > MaxPayloadBytes || (p == APNs && len(n.APNsBody) > MaxPayloadBytes) {
			t.Errorf("%s: wake-up of %d bytes (APNs body %d), over %d", p, Size(n), len(n.APNsBody), MaxPayloadBytes)
		}
		if n.Data["delivery_id"] == "" || n.Data["body"] != n.Body {
			t.Errorf("%s: the shortened wake-up lost its keys: %v", p, n.Data)
		}
	}
}

func TestOversized(t *testing.T) {
	body := strings.Repeat("é", 3000) // 6000 bytes
	for _, p := range []Provider{APNs, FCM} {
		n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: strings.Repeat("T", 300), Body: body, Severity: "high", OccurredAt: 1}), p)
		if !n.Oversized || n.Data["provider_wakeup"] != "1" || n.Data["provider_mode"] != "wakeup" || n.Data["_skip_persist"] != "1" ||
			n.Full["body"] != body {
			t.Fatalf("%s: not a wake-up: oversized=%v data=%v", p, n.Oversized, n.Data)
		}
		for _, k := range []string{"delivery_id", "channel_id", "entity_type", "entity_id", "message_id", "op_id", "sent_at",
			"schema_version", "payload_version", "severity"} {
			if n.Data[k] == "" || n.Data[k] != n.Full[k] {
				t.Errorf("%s: wake-up data[%s] = %q, full %q", p, k, n.Data[k], n.Full[k])
			}
		}
		// Only wakeup.rs's keys (and severity): the app files the pulled
		// item, never the wake-up.
		for _, k := range []string{"ingested_at", "occurred_at", "url", "tags", "provider_device_key"} {
			if _, ok := n.Data[k]; ok {
				t.Errorf("%s: wake-up carries %s", p, k)
			}
		}
		// A wake-up is acked through the pull, as PushGo's: no ack
		// identity in the inbox's copy either.
		if _, ok := n.Full["provider_device_key"]; ok {
			t.Errorf("%s: the wake-up's inbox copy carries provider_device_key", p)
		}
		if Size(n) > MaxPayloadBytes || utf8.RuneCountInString(n.Body) > wakePreviewRunes+1 || len(n.Title) > wakeTitleBytes ||
			!utf8.ValidString(n.Body) || !strings.HasSuffix(n.Body, "…") || n.Data["body"] != n.Body || n.Data["title"] != n.Title {
			t.Errorf("%s: wake-up of %d bytes, title %d, body %d (%q…)", p, Size(n), len(n.Title), len(n.Body), n.Body[:10])
		}
		if n.Priority != PriorityHigh || n.InterruptionLevel != "time-sensitive" || n.Background {
			t.Errorf("%s: the wake-up lost its severity: %+v", p, n)
		}
	}
	// A low item's wake-up still goes at high priority: the device must
	// wake to fetch it (PushGo's wake-ups are priority 10 / HIGH).
	n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Body: body, Severity: "low", OccurredAt: 1}), FCM)
	if !n.Oversized || n.Priority != PriorityHigh {
		t.Errorf("low wake-up: oversized=%v priority=%d", n.Oversized, n.Priority)
	}
	// Just under the limit stays whole; the threshold is per provider.
	n = build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Body: strings.Repeat("x", 1500), Severity: "normal", OccurredAt: 1}), FCM)
	if n.Oversized {
		t.Errorf("a 1.5 KiB body was oversized (size %d)", Size(n))
	}
}

func TestWakePreview(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"  one  \n\n  two \r\n", "one\ntwo"},
		{strings.Repeat("x", 180), strings.Repeat("x", 180)},
		{strings.Repeat("é", 181), strings.Repeat("é", 180) + "…"},
	} {
		if got := wakePreview(c.in, wakePreviewRunes); got != c.want {
			t.Errorf("wakePreview(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestAPNsJSON(t *testing.T) {
	n := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Body: "B", Severity: "critical", OccurredAt: 1}), APNs)
	b, err := APNsJSON(n)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"alert": map[string]any{"title": "T", "body": "B"},
		"sound":              map[string]any{"name": "alert.caf", "critical": float64(1), "volume": float64(1)},
		"interruption-level": "critical", "thread-id": "message|channel=" + channel, "mutable-content": float64(1)}
	if !jsonEqual(got["aps"], want) {
		t.Errorf("aps = %v, want %v", got["aps"], want)
	}
	if len(got) != len(n.Data)+1 {
		t.Errorf("%d top-level keys, want aps and %d data keys", len(got), len(n.Data))
	}
	for k, v := range n.Data {
		if got[k] != v {
			t.Errorf("beside aps: %s = %v, want %q", k, got[k], v)
		}
	}

	low := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "low", OccurredAt: 1}), APNs)
	b, _ = APNsJSON(low)
	if strings.Contains(string(b), `"sound"`) || !strings.Contains(string(b), `"interruption-level":"passive"`) || !strings.Contains(string(b), `"alert":{"title":"T"}`) {
		t.Errorf("low: %s", b)
	}

	normal := build(t, env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}), APNs)
	b, _ = APNsJSON(normal)
	if !strings.Contains(string(b), `"sound":"bubble-pop.caf"`) {
		t.Errorf("normal: %s", b)
	}

	bg, err := Build(env(t, ops.ThingUpdate, "x", ops.ThingPayload{ObservedAt: 1}), 42, "devkey", APNs, "tok", now, QuietThingUpdates())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = APNsJSON(bg)
	if !strings.Contains(string(b), `"aps":{"content-available":1}`) {
		t.Errorf("background: %s", b)
	}
	if b2, _ := APNsJSON(bg); string(b2) != string(b) {
		t.Errorf("APNsJSON is not deterministic")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a, json.Deterministic(true))
	y, _ := json.Marshal(b, json.Deterministic(true))
	return string(x) == string(y)
}

func TestErrors(t *testing.T) {
	good := env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Severity: "normal", OccurredAt: 1})
	if _, err := Build(good, 1, "d", "webpush", "tok", now); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("provider: %v", err)
	}
	bad := good
	bad.Op = "message.delete"
	if _, err := Build(bad, 1, "d", APNs, "tok", now); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("op: %v", err)
	}
	bad = good
	bad.Payload = jsontext.Value(`{"title": 5}`)
	if _, err := Build(bad, 1, "d", APNs, "tok", now); err == nil {
		t.Errorf("a bad payload built")
	}
}

func TestDeterministic(t *testing.T) {
	e := env(t, ops.EventCreate, "e", ops.EventPayload{Title: "x", Status: "s", Message: "m", Severity: "high", EventTime: 1, Tags: []string{"a"}})
	a, b := build(t, e, APNs), build(t, e, APNs)
	if !maps.Equal(a.Data, b.Data) || a.CollapseID != b.CollapseID || a.Title != b.Title {
		t.Errorf("Build is not deterministic")
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"hello", 10, "hello"}, {"hello world", 8, "hello…"}, {"ééé", 5, "é…"}, {"aééé", 6, "aé…"}, {"aééé", 5, "a…"}} {
		if got := cut(c.in, c.n); got != c.want || len(got) > c.n || !utf8.ValidString(got) {
			t.Errorf("cut(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestQuietThingUpdates: thing updates ring by default, as PushGo's; the
// quiet option makes them background pushes with their own collapse id.
func TestQuietThingUpdates(t *testing.T) {
	env := ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", OpID: "o", EntityID: "nas", AcceptedAt: 1,
		Payload: []byte(`{"thing_id":"nas","observed_at":1713750000000,"attrs":{"temp":44}}`)}
	alert, err := Build(env, 7, "dev", APNs, "tok", time.Unix(1713750000, 0))
	if err != nil || alert.Background || alert.Priority != PriorityHigh || alert.InterruptionLevel != "active" {
		t.Fatalf("default thing.update: background=%v priority=%v level=%q err=%v", alert.Background, alert.Priority, alert.InterruptionLevel, err)
	}
	bg, err := Build(env, 7, "dev", APNs, "tok", time.Unix(1713750000, 0), QuietThingUpdates())
	if err != nil || !bg.Background || bg.Priority != PriorityNormal || alert.CollapseID == bg.CollapseID {
		t.Fatalf("quiet thing.update: background=%v priority=%v collapse %q vs %q err=%v", bg.Background, bg.Priority, alert.CollapseID, bg.CollapseID, err)
	}
	// Quiet concerns updates only.
	create := env
	create.Op = ops.ThingCreate
	if n, err := Build(create, 7, "dev", APNs, "tok", time.Unix(1713750000, 0), QuietThingUpdates()); err != nil || n.Background {
		t.Fatalf("quiet thing.create: background=%v err=%v", n.Background, err)
	}
}

func TestBaseURL(t *testing.T) {
	e := env(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "t", Body: strings.Repeat("x", 5000), Severity: "normal", OccurredAt: 1})
	n, err := Build(e, 1, "d", FCM, "tok", now, BaseURL("https://push.example.com/"))
	if err != nil || n.Full["base_url"] != "https://push.example.com" || n.Data["base_url"] != "https://push.example.com" {
		t.Fatalf("base_url: full %q, wake-up %q, err %v", n.Full["base_url"], n.Data["base_url"], err)
	}
	if n := build(t, e, FCM); n.Full["base_url"] != "" {
		t.Errorf("base_url without the option: %q", n.Full["base_url"])
	}
}

// TestFCMPriorityFollowsWhatAndroidShows: on FCM a push goes at high
// priority only when the Android app shows it (a message; an Event at high
// or critical), whole or as a wake-up; a Thing's, or a normal Event's, goes
// at normal priority: Google demotes an app whose high-priority messages
// make no visible notification, which would then hold back its critical
// alerts under Doze. APNs is unchanged.
func TestFCMPriorityFollowsWhatAndroidShows(t *testing.T) {
	long := strings.Repeat("x", 5000) // a wake-up
	for _, c := range []struct {
		op   ops.Name
		p    any
		want Priority
	}{
		{ops.MessageCreate, ops.MessagePayload{Title: "m", Body: "b", Severity: "normal", OccurredAt: 1}, PriorityHigh},
		{ops.MessageCreate, ops.MessagePayload{Title: "m", Body: long, Severity: "normal", OccurredAt: 1}, PriorityHigh},
		{ops.EventCreate, ops.EventPayload{Title: "e", Status: "s", Message: "m", Severity: "high", EventTime: 1}, PriorityHigh},
		{ops.EventCreate, ops.EventPayload{Title: "e", Status: "s", Message: long, Severity: "critical", EventTime: 1}, PriorityHigh},
		{ops.EventCreate, ops.EventPayload{Title: "e", Status: "s", Message: "m", Severity: "normal", EventTime: 1}, PriorityNormal},
		{ops.EventUpdate, ops.EventPayload{Status: "s", Message: long, Severity: "normal", EventTime: 1}, PriorityNormal},
		{ops.ThingUpdate, ops.ThingPayload{Title: "t", Description: long, ObservedAt: 1}, PriorityNormal},
		{ops.ThingCreate, ops.ThingPayload{Title: "t", ObservedAt: 1}, PriorityNormal},
	} {
		n := build(t, env(t, c.op, "x1", c.p), FCM)
		if n.Priority != c.want {
			t.Errorf("%s (wake-up %t): priority %d, want %d", c.op, n.Oversized, n.Priority, c.want)
		}
		if a := build(t, env(t, c.op, "x1", c.p), APNs); a.Priority != PriorityHigh {
			t.Errorf("%s on APNs: priority %d", c.op, a.Priority)
		}
	}
}
