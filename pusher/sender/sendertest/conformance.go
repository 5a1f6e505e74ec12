package sendertest

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/ops"
)

// NewFunc returns a fresh sender and the provider it sends to. It is called
// once per case; the sender's own SendTimeout should be at least a few
// seconds (the suite sets shorter deadlines through the context where it
// needs them).
type NewFunc func(t *testing.T) (sender.Sender, Provider)

// RunConformance runs every case that applies to the provider's
// capabilities against the senders newSender makes.
//
// A case that needs a capability the provider lacks is not run and not
// registered as a subtest: it does not apply, so it is neither passed nor
// skipped.
func RunConformance(t *testing.T, newSender NewFunc) {
	_, probe := newSender(t)
	caps := probe.Capabilities()
	for _, c := range cases {
		if caps&c.needs != c.needs {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, p := newSender(t)
			c.run(t, &harness{s: s, p: p, caps: caps})
		})
	}
}

// Cases returns the names of the cases that apply to a provider with caps,
// in order (for a test that wants to assert its coverage).
func Cases(caps Capability) []string {
	var names []string
	for _, c := range cases {
		if caps&c.needs == c.needs {
			names = append(names, c.name)
		}
	}
	return names
}

type testCase struct {
	name  string
	needs Capability
	run   func(t *testing.T, h *harness)
}

type harness struct {
	s    sender.Sender
	p    Provider
	caps Capability
	seq  uint64
	mu   sync.Mutex
}

// has reports whether the provider has every capability of c.
func (h *harness) has(c Capability) bool { return h.caps&c == c }

// Channel is the channel id of the suite's operations.
const Channel = "0Y3C8M5N2P6Q9R1S4T7V0W3X5Z"

func (h *harness) nextSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return h.seq
}

// build builds the notification of env for token at now.
func (h *harness) build(t *testing.T, env ops.Envelope, token string, now time.Time, opts ...payload.Option) payload.Notification {
	t.Helper()
	n, err := payload.Build(env, h.nextSeq(), "dev-"+token, h.p.Platform(), token, now, opts...)
	if err != nil {
		t.Fatalf("payload.Build(%s): %v", env.Op, err)
	}
	return n
}

func (h *harness) send(t *testing.T, n payload.Notification) sender.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.s.Send(ctx, n)
}

// one returns the single push received for token.
func (h *harness) one(t *testing.T, token string) Observed {
	t.Helper()
	got := h.p.Received(token)
	if len(got) != 1 {
		t.Fatalf("provider received %d pushes for %s, want 1", len(got), token)
	}
	noProblems(t, got[0])
	return got[0]
}

func noProblems(t *testing.T, o Observed) {
	t.Helper()
	for _, p := range o.Problems {
		t.Errorf("provider noticed: %s", p)
	}
}

func wantOutcome(t *testing.T, r sender.Result, want sender.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("Send = %v, want outcome %v", r, want)
	}
}

func mustJSON(t *testing.T, v any) jsontext.Value {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Envelope returns the envelope of op on entity id with payload p.
func Envelope(t *testing.T, op ops.Name, id string, p any) ops.Envelope {
	return ops.Envelope{
		V: ops.EnvelopeVersion, Op: op, ChannelID: Channel, OpID: "op-" + id + "-" + strings.ReplaceAll(string(op), ".", "-"),
		EntityID: id, AcceptedAt: time.Now().UnixMilli(), BodyHash: strings.Repeat("ab", 32), Payload: mustJSON(t, p),
	}
}

func ptr[T any](v T) *T { return &v }

func message(t *testing.T, id string, p ops.MessagePayload) ops.Envelope {
	p.MessageID = id
	if p.Title == "" {
		p.Title = "Backup finished"
	}
	if p.Severity == "" {
		p.Severity = ops.SeverityNormal
	}
	if p.OccurredAt == 0 {
		p.OccurredAt = time.Now().UnixMilli()
	}
	return Envelope(t, ops.MessageCreate, id, p)
}

func event(t *testing.T, op ops.Name, id string, p ops.EventPayload) ops.Envelope {
	p.EventID = id
	if p.Status == "" {
		p.Status = "running"
	}
	if p.Message == "" {
		p.Message = "step " + string(op)
	}
	if p.Severity == "" {
		p.Severity = ops.SeverityHigh
	}
	if p.EventTime == 0 {
		p.EventTime = time.Now().UnixMilli()
	}
	return Envelope(t, op, id, p)
}

func thing(t *testing.T, op ops.Name, id string, p ops.ThingPayload) ops.Envelope {
	p.ThingID = id
	if p.ObservedAt == 0 {
		p.ObservedAt = time.Now().UnixMilli()
	}
	return Envelope(t, op, id, p)
}

// commonKeys are the keys of spec section 8 every push carries (a Thing's
// has no severity, as PushGo's; internal/deliveryflow's app contract
// fixture checks each key against the apps).
var commonKeys = []string{"channel_id", "title", "body", "schema_version", "payload_version", "op_id",
	"delivery_id", "ingested_at", "occurred_at", "sent_at", "entity_type", "entity_id"}

func hasKeys(t *testing.T, data map[string]string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := data[k]; !ok {
			t.Errorf("data lacks %q (has %v)", k, sortedKeys(data))
		}
	}
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func sameData(t *testing.T, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("data[%q] = %q, want %q", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected data key %q", k)
			}
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

var cases = []testCase{
	{name: "AlertCarriesTheSection8Map", run: func(t *testing.T, h *harness) {
		now := time.Now()
		msg := h.build(t, message(t, "m1", ops.MessagePayload{
			ThingID: "nas", Title: "Disk failed", Body: "sda is gone", Severity: ops.SeverityHigh,
			URL: "https://example.invalid/nas", Images: []string{"https://example.invalid/a.png"},
			Tags: []string{"nas", "disk"}, Metadata: mustJSON(t, map[string]any{"disk": "sda", "bay": 2}),
			Ciphertext: "AAAA", TTL: ptr(now.Add(time.Hour).UnixMilli()),
		}), "tok-alert-msg", now)
		r := h.send(t, msg)
		wantOutcome(t, r, sender.Sent)
		if r.ProviderID == "" {
			t.Errorf("Sent without a ProviderID: %v", r)
		}
		o := h.one(t, "tok-alert-msg")
		if h.has(CapAlert) && (!o.Alert || o.Background) {
			t.Errorf("message went as alert=%v background=%v, want an alert", o.Alert, o.Background)
		}
		if o.Title != msg.Title || o.Body != msg.Body || !o.High {
			t.Errorf("shown = %q / %q (high %v), want %q / %q at high priority", o.Title, o.Body, o.High, msg.Title, msg.Body)
		}
		sameData(t, o.Data, msg.Data)
		hasKeys(t, o.Data, commonKeys...)
		hasKeys(t, o.Data, "severity", "message_id", "ttl", "thing_id", "url", "images", "tags", "metadata", "ciphertext")
		if o.Data["entity_type"] != "message" || o.Data["delivery_id"] != msg.DeliveryID || o.Data["schema_version"] != "1" ||
			o.Data["message_id"] != "m1" || o.Data["entity_id"] != "m1" {
			t.Errorf("data = %v", o.Data)
		}

		ev := h.build(t, event(t, ops.EventCreate, "e1", ops.EventPayload{
			ThingID: "nas", Title: "Backup", Description: "nightly", Status: "running", Message: "started",
			Severity: ops.SeverityNormal, StartedAt: ptr(now.UnixMilli()), Tags: []string{"backup"},
			Attrs: mustJSON(t, map[string]any{"progress": 0}), Metadata: mustJSON(t, map[string]any{"host": "nas"}),
		}), "tok-alert-event", now)
		wantOutcome(t, h.send(t, ev), sender.Sent)
		o = h.one(t, "tok-alert-event")
		sameData(t, o.Data, ev.Data)
		hasKeys(t, o.Data, commonKeys...)
		hasKeys(t, o.Data, "severity", "event_id", "event_state", "event_time", "status", "message", "description",
			"started_at", "thing_id", "tags", "attrs", "metadata")
		if o.Data["event_state"] != ops.EventOngoing || o.Title != "Backup" || o.Body != "started" {
			t.Errorf("event push: shown %q / %q, data %v", o.Title, o.Body, o.Data)
		}
	}},

	{name: "SeverityMapping", run: func(t *testing.T, h *harness) {
		for _, sev := range []string{ops.SeverityCritical, ops.SeverityHigh, ops.SeverityNormal, ops.SeverityLow} {
			tok := "tok-sev-" + sev
			n := h.build(t, message(t, "m-"+sev, ops.MessagePayload{Severity: sev}), tok, time.Now())
			wantOutcome(t, h.send(t, n), sender.Sent)
			o := h.one(t, tok)
			m, _ := payload.MapSeverity(sev)
			if o.High != (m.Priority == payload.PriorityHigh) {
				t.Errorf("%s: high priority = %v, want %v", sev, o.High, m.Priority == payload.PriorityHigh)
			}
			if o.Data["severity"] != sev {
				t.Errorf("%s: data severity %q", sev, o.Data["severity"])
			}
		}
	}},

	{name: "SeverityInterruptionLevel", needs: CapInterruptionLevel, run: func(t *testing.T, h *harness) {
		// PushGo's levels and sounds (gateway src/providers/apns.rs), the
		// critical one as Apple's critical-alert dictionary.
		want := map[string]struct {
			level, sound string
			critical     bool
		}{
			"critical": {"critical", "alert.caf", true}, "high": {"time-sensitive", "level-up.caf", false},
			"normal": {"active", "bubble-pop.caf", false}, "low": {"passive", "", false},
		}
		for sev, w := range want {
			tok := "tok-level-" + sev
			n := h.build(t, message(t, "m-"+sev, ops.MessagePayload{Severity: sev}), tok, time.Now())
			wantOutcome(t, h.send(t, n), sender.Sent)
			if o := h.one(t, tok); o.InterruptionLevel != w.level || o.Sound != w.sound || o.CriticalSound != w.critical {
				t.Errorf("%s: interruption-level %q, sound %q (critical %v), want %q, %q (%v)", sev,
					o.InterruptionLevel, o.Sound, o.CriticalSound, w.level, w.sound, w.critical)
			}
		}
	}},

	{name: "EventUpdatesShareACollapseID", run: func(t *testing.T, h *harness) {
		now := time.Now()
		tok := "tok-collapse"
		for _, op := range []ops.Name{ops.EventCreate, ops.EventUpdate, ops.EventClose} {
			wantOutcome(t, h.send(t, h.build(t, event(t, op, "e-collapse", ops.EventPayload{Title: "Deploy"}), tok, now)), sender.Sent)
		}
		wantOutcome(t, h.send(t, h.build(t, event(t, ops.EventUpdate, "e-other", ops.EventPayload{}), tok, now)), sender.Sent)
		wantOutcome(t, h.send(t, h.build(t, message(t, "m-collapse", ops.MessagePayload{}), tok, now)), sender.Sent)
		got := h.p.Received(tok)
		if len(got) != 5 {
			t.Fatalf("received %d pushes, want 5", len(got))
		}
		for _, o := range got {
			noProblems(t, o)
		}
		first := got[0].CollapseID
		if !h.has(CapCollapse) {
			for i, o := range got {
				if o.CollapseID != "" {
					t.Errorf("push %d names collapse id %q, on a provider that must see none", i, o.CollapseID)
				}
			}
			return
		}
		if first == "" || got[1].CollapseID != first || got[2].CollapseID != first {
			t.Errorf("collapse ids of one event: %q %q %q, want one non-empty id", first, got[1].CollapseID, got[2].CollapseID)
		}
		if len(first) > payload.MaxCollapseIDBytes {
			t.Errorf("collapse id %q over 64 bytes", first)
		}
		if got[3].CollapseID == first || got[3].CollapseID == "" {
			t.Errorf("another event's collapse id %q (first %q)", got[3].CollapseID, first)
		}
		if got[4].CollapseID != "" {
			t.Errorf("a message has collapse id %q; messages never replace each other", got[4].CollapseID)
		}
		if got[2].Data["event_state"] != ops.EventClosed {
			t.Errorf("close: event_state %q", got[2].Data["event_state"])
		}
	}},

	{name: "EventThreadID", needs: CapInterruptionLevel, run: func(t *testing.T, h *harness) {
		now := time.Now()
		for i, op := range []ops.Name{ops.EventCreate, ops.EventUpdate} {
			tok := fmt.Sprintf("tok-thread-%d", i)
			wantOutcome(t, h.send(t, h.build(t, event(t, op, "e-thread", ops.EventPayload{Title: "Deploy"}), tok, now)), sender.Sent)
		}
		a, b := h.one(t, "tok-thread-0"), h.one(t, "tok-thread-1")
		// The Apple app's own thread id (NotificationPayloadSemantics.swift
		// notificationThreadIdentifier), which PushGo sends too.
		if want := "event|channel=" + Channel + "|event=e-thread"; a.ThreadID != want || b.ThreadID != want {
			t.Errorf("thread ids %q, %q: want %q", a.ThreadID, b.ThreadID, want)
		}
	}},

	{name: "ThingUpdatesRingAsPushGo", run: func(t *testing.T, h *harness) {
		now := time.Now()
		// PushGo pushes every thing operation as an alert at high priority,
		// updates included; on FCM at normal priority, as the Android app
		// shows no Thing (payload.androidShows says why).
		high := h.p.Platform() != payload.FCM
		up := h.build(t, thing(t, ops.ThingUpdate, "nas", ops.ThingPayload{
			Attrs: mustJSON(t, map[string]any{"cpu": 42, "temp": 51.5}),
		}), "tok-thing-up", now)
		wantOutcome(t, h.send(t, up), sender.Sent)
		o := h.one(t, "tok-thing-up")
		if o.Background || o.High != high || (h.has(CapAlert) && !o.Alert) {
			t.Errorf("thing.update: background=%v alert=%v high=%v, want an alert (high %v)", o.Background, o.Alert, o.High, high)
		}
		sameData(t, o.Data, up.Data)
		hasKeys(t, o.Data, "thing_id", "state", "observed_at", "attrs")
		if o.Data["state"] != ops.ThingActive || o.Data["body"] != "cpu=42\ntemp=51.5" {
			t.Errorf("state %q, body %q", o.Data["state"], o.Data["body"])
		}
		if _, ok := o.Data["severity"]; ok {
			t.Errorf("a thing push has a severity: %v", o.Data)
		}

		// Quiet, a channel's choice: a background push at normal priority.
		quiet := h.build(t, thing(t, ops.ThingUpdate, "nas", ops.ThingPayload{
			Attrs: mustJSON(t, map[string]any{"cpu": 43}),
		}), "tok-thing-quiet", now, payload.QuietThingUpdates())
		wantOutcome(t, h.send(t, quiet), sender.Sent)
		q := h.one(t, "tok-thing-quiet")
		if q.High || q.Alert || (h.has(CapAlert) && !q.Background) {
			t.Errorf("quiet thing.update: background=%v alert=%v high=%v, want a normal-priority background push", q.Background, q.Alert, q.High)
		}
		sameData(t, q.Data, quiet.Data)

		for op, label := range map[ops.Name]string{ops.ThingCreate: "创建", ops.ThingArchive: "存档", ops.ThingDelete: "删除"} {
			tok := "tok-" + string(op)
			n := h.build(t, thing(t, op, "nas", ops.ThingPayload{Title: "NAS"}), tok, now)
			wantOutcome(t, h.send(t, n), sender.Sent)
			c := h.one(t, tok)
			if c.Background || c.High != high || c.Data["title"] != "NAS" {
				t.Errorf("%s: background=%v high=%v data title %q, want an alert titled NAS (high %v)", op, c.Background, c.High, c.Data["title"], high)
			}
			// The alert's own title is PushGo's "<action>: <title>".
			if h.has(CapAlert) && (!c.Alert || c.Title != label+": NAS") {
				t.Errorf("%s: alert=%v title=%q, want %q", op, c.Alert, c.Title, label+": NAS")
			}
			if h.has(CapCollapse) && c.CollapseID == q.CollapseID {
				t.Errorf("%s shares collapse id %q with quiet updates", op, c.CollapseID)
			}
		}
	}},

	{name: "Expiration", run: func(t *testing.T, h *harness) {
		now := time.Now()
		ttl := now.Add(2 * time.Hour)
		n := h.build(t, message(t, "m-ttl", ops.MessagePayload{TTL: ptr(ttl.UnixMilli())}), "tok-ttl", now)
		wantOutcome(t, h.send(t, n), sender.Sent)
		o := h.one(t, "tok-ttl")
		if d := o.Expires.Sub(ttl); o.Expires.IsZero() || d < -3*time.Second || d > 3*time.Second {
			t.Errorf("expires %v, want about %v", o.Expires, ttl)
		}
		n = h.build(t, message(t, "m-nottl", ops.MessagePayload{}), "tok-nottl", now)
		wantOutcome(t, h.send(t, n), sender.Sent)
		if o := h.one(t, "tok-nottl"); !o.Expires.IsZero() {
			t.Errorf("no ttl, but expires %v", o.Expires)
		}
	}},

	// A phone offline overnight while a busy channel updated gets its
	// critical alert when it connects, by the provider's own store
	// (OfflineDelivery): what shows nothing goes now or never, so it
	// neither replaces the one notification APNs keeps nor fills the
	// hundred FCM keeps and drops.
	{name: "OfflineDeviceKeepsItsAlert", run: func(t *testing.T, h *harness) {
		now := time.Now()
		tok := "tok-offline"
		send := func(env ops.Envelope, opts ...payload.Option) payload.Notification {
			t.Helper()
			n := h.build(t, env, tok, now, opts...)
			wantOutcome(t, h.send(t, n), sender.Sent)
			return n
		}
		send(event(t, ops.EventCreate, "e-outage", ops.EventPayload{Title: "Outage", Severity: ops.SeverityCritical}))
		alerts := 1
		if h.p.Platform() == payload.FCM {
			// What the Android app does not show: Thing updates, a normal
			// event; and a Thing's creation, which stays stored (the app
			// holds back messages about a Thing it does not know).
			for i := range FCMStoredMax + 20 {
				send(thing(t, ops.ThingUpdate, "sensor", ops.ThingPayload{Attrs: mustJSON(t, map[string]any{"temp": i})}))
			}
			send(event(t, ops.EventUpdate, "e-deploy", ops.EventPayload{Severity: ops.SeverityNormal}))
			send(thing(t, ops.ThingCreate, "sensor-2", ops.ThingPayload{Title: "Sensor 2"}))
			alerts++
		} else {
			// Background pushes: a quiet channel's Thing updates and an
			// integration's refresh of the open event.
			for i := range 3 {
				send(thing(t, ops.ThingUpdate, "sensor", ops.ThingPayload{Attrs: mustJSON(t, map[string]any{"temp": i})}),
					payload.QuietThingUpdates())
			}
			send(event(t, ops.EventUpdate, "e-outage", ops.EventPayload{Severity: ops.SeverityCritical, Refresh: true}))
		}
		got := h.p.Received(tok)
		for _, o := range got {
			noProblems(t, o)
			// What a device shows is never now or never.
			shown := o.Alert || (h.p.Platform() == payload.FCM && o.High)
			if shown && o.NowOrNever {
				t.Errorf("%s %s: shown, yet sent now or never", o.Data["entity_type"], o.Data["entity_id"])
			}
		}
		kept, dropped := OfflineDelivery(h.p.Platform(), got)
		if dropped {
			t.Errorf("the provider dropped its store for the offline device (%d pushes sent)", len(got))
		}
		if len(kept) != alerts || kept[0].Data["entity_id"] != "e-outage" || kept[0].Data["severity"] != ops.SeverityCritical ||
			(h.has(CapAlert) && !kept[0].Alert) {
			ids := make([]string, len(kept))
			for i, o := range kept {
				ids[i] = o.Data["entity_id"]
			}
			t.Fatalf("the offline device gets %v, want the critical alert first of %d", ids, alerts)
		}
		if alerts == 2 && kept[1].Data["entity_id"] != "sensor-2" {
			t.Errorf("the Thing's creation was not kept: %v", kept[1].Data)
		}
	}},

	{name: "ExpiredIsNotSent", run: func(t *testing.T, h *harness) {
		built := time.Now().Add(-2 * time.Hour)
		n := h.build(t, message(t, "m-old", ops.MessagePayload{TTL: ptr(built.Add(time.Hour).UnixMilli())}), "tok-old", built)
		r := h.send(t, n)
		wantOutcome(t, r, sender.Failed)
		if r.Reason != "expired" {
			t.Errorf("reason %q, want expired", r.Reason)
		}
		if got := h.p.Received("tok-old"); len(got) != 0 {
			t.Errorf("an expired push reached the provider")
		}
	}},

	{name: "OversizedGoesAsWakeUp", run: func(t *testing.T, h *harness) {
		n := h.build(t, message(t, "m-big", ops.MessagePayload{Title: "Log", Body: strings.Repeat("line of log output\n", 400)}), "tok-big", time.Now())
		if !n.Oversized {
			t.Fatalf("a %d-byte body was not marked oversized", len(n.Full["body"]))
		}
		wantOutcome(t, h.send(t, n), sender.Sent)
		o := h.one(t, "tok-big")
		// PushGo's wake-up markers (gateway src/util/wakeup.rs) and the ids
		// the app pulls and files the item with.
		for k, v := range map[string]string{"provider_wakeup": "1", "provider_mode": "wakeup", "_skip_persist": "1",
			"delivery_id": n.DeliveryID, "entity_id": "m-big", "message_id": "m-big", "entity_type": "message"} {
			if o.Data[k] != v {
				t.Errorf("wake-up data[%s] = %q, want %q (data %v)", k, o.Data[k], v, sortedKeys(o.Data))
			}
		}
		if (h.has(CapAlert) && !o.Alert) || o.Title != "Log" || !o.High {
			t.Errorf("wake-up alert=%v title=%q high=%v", o.Alert, o.Title, o.High)
		}
	}},

	{name: "Outcomes", run: func(t *testing.T, h *harness) {
		// FCM's quota errors back off from a minute (sender.FCMQuotaBackoff).
		quota := func() time.Duration {
			if h.p.Platform() == payload.FCM {
				return sender.FCMQuotaBackoff
			}
			return 0
		}
		table := []struct {
			answer     Answer
			want       sender.Outcome
			retryAfter time.Duration
			backoff    time.Duration
		}{
			{Answer{Kind: OK}, sender.Sent, 0, 0},
			{Answer{Kind: Unregistered}, sender.RetireToken, 0, 0},
			{Answer{Kind: BadToken}, sender.RetireToken, 0, 0},
			{Answer{Kind: BadRequest}, sender.Failed, 0, 0},
			{Answer{Kind: AuthError}, sender.Failed, 0, 0},
			// With no fresher credential to try at once: a later try may
			// have one.
			{Answer{Kind: ExpiredAuth}, sender.Retry, 0, 0},
			{Answer{Kind: TooManyRequests}, sender.Retry, 0, quota()},
			{Answer{Kind: TooManyRequests, RetryAfter: 7 * time.Second}, sender.Retry, 7 * time.Second, quota()},
			{Answer{Kind: Unavailable}, sender.Retry, 0, 0},
			{Answer{Kind: Unavailable, RetryAfter: 30 * time.Second}, sender.Retry, 30 * time.Second, 0},
			{Answer{Kind: Internal}, sender.Retry, 0, 0},
		}
		for i, c := range table {
			tok := fmt.Sprintf("tok-outcome-%d", i)
			h.p.Script(tok, c.answer)
			n := h.build(t, message(t, tok, ops.MessagePayload{}), tok, time.Now())
			start := time.Now()
			r := h.send(t, n)
			if r.Outcome != c.want || r.RetryAfter != c.retryAfter || r.Backoff != c.backoff {
				t.Errorf("answer %+v: got %v (retry-after %v, backoff %v), want %v (retry-after %v, backoff %v)",
					c.answer, r, r.RetryAfter, r.Backoff, c.want, c.retryAfter, c.backoff)
			}
			if r.Outcome != sender.Sent && r.Reason == "" {
				t.Errorf("answer %+v: no reason in %v", c.answer, r)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("answer %+v: Send took %v; a sender must not sleep or retry by itself", c.answer, el)
			}
			if got := len(h.p.Received(tok)); got != 1 {
				t.Errorf("answer %+v: provider received %d requests, want exactly 1 (no hidden retries)", c.answer, got)
			}
		}
	}},

	{name: "ScriptedFailuresThenSuccess", run: func(t *testing.T, h *harness) {
		tok := "tok-flaky"
		h.p.Script(tok, Answer{Kind: Unavailable}, Answer{Kind: TooManyRequests, RetryAfter: time.Second})
		n := h.build(t, message(t, "m-flaky", ops.MessagePayload{}), tok, time.Now())
		for i, want := range []sender.Outcome{sender.Retry, sender.Retry, sender.Sent} {
			if r := h.send(t, n); r.Outcome != want {
				t.Fatalf("send %d: %v, want %v", i+1, r, want)
			}
		}
		got := h.p.Received(tok)
		if len(got) != 3 {
			t.Fatalf("received %d, want 3", len(got))
		}
		if got[0].Data["delivery_id"] != got[2].Data["delivery_id"] {
			t.Errorf("a retried delivery changed its delivery_id")
		}
	}},

	{name: "DeadlineHonouredWhenProviderHangs", run: func(t *testing.T, h *harness) {
		tok := "tok-hang"
		h.p.Script(tok, Answer{Kind: OK, Latency: 20 * time.Second})
		n := h.build(t, message(t, "m-hang", ops.MessagePayload{}), tok, time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		r := h.s.Send(ctx, n)
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Send returned after %v with a 300ms deadline", el)
		}
		wantOutcome(t, r, sender.Retry)
		if r.Reason != "timeout" {
			t.Errorf("reason %q, want timeout", r.Reason)
		}
	}},

	{name: "SameDeliverySameProviderID", needs: CapProviderID, run: func(t *testing.T, h *harness) {
		tok := "tok-apnsid"
		h.p.Script(tok, Answer{Kind: Unavailable})
		env := message(t, "m-id", ops.MessagePayload{})
		now := time.Now()
		n, err := payload.Build(env, 77, "dev-1", h.p.Platform(), tok, now)
		if err != nil {
			t.Fatal(err)
		}
		other, err := payload.Build(env, 77, "dev-2", h.p.Platform(), tok, now)
		if err != nil {
			t.Fatal(err)
		}
		wantOutcome(t, h.send(t, n), sender.Retry)
		r := h.send(t, n)
		wantOutcome(t, r, sender.Sent)
		wantOutcome(t, h.send(t, other), sender.Sent)
		got := h.p.Received(tok)
		if len(got) != 3 {
			t.Fatalf("received %d, want 3", len(got))
		}
		if !uuidRE.MatchString(got[0].ID) {
			t.Errorf("id %q is not a lower-case UUID", got[0].ID)
		}
		if got[0].ID != got[1].ID {
			t.Errorf("retry of one delivery: ids %q and %q differ", got[0].ID, got[1].ID)
		}
		if got[2].ID == got[0].ID {
			t.Errorf("two deliveries share id %q", got[0].ID)
		}
		if r.ProviderID != got[1].ID {
			t.Errorf("ProviderID %q, want %q", r.ProviderID, got[1].ID)
		}
	}},

	{name: "CredentialsPresented", needs: CapAuth, run: func(t *testing.T, h *harness) {
		wantOutcome(t, h.send(t, h.build(t, message(t, "m-auth", ops.MessagePayload{}), "tok-auth", time.Now())), sender.Sent)
		if o := h.one(t, "tok-auth"); !o.Authorized {
			t.Errorf("the provider saw no credentials")
		}
	}},

	{name: "ConcurrentSends", run: func(t *testing.T, h *harness) {
		const n = 24
		var wg sync.WaitGroup
		results := make([]sender.Result, n)
		now := time.Now()
		for i := range n {
			tok := fmt.Sprintf("tok-conc-%d", i)
			if i%3 == 0 {
				h.p.Script(tok, Answer{Kind: Unregistered})
			}
			note := h.build(t, message(t, tok, ops.MessagePayload{}), tok, now)
			wg.Go(func() { results[i] = h.send(t, note) })
		}
		wg.Wait()
		for i, r := range results {
			want := sender.Sent
			if i%3 == 0 {
				want = sender.RetireToken
			}
			if r.Outcome != want {
				t.Errorf("send %d: %v, want %v", i, r, want)
			}
			if got := len(h.p.Received(fmt.Sprintf("tok-conc-%d", i))); got != 1 {
				t.Errorf("token %d received %d pushes", i, got)
			}
		}
	}},
}
