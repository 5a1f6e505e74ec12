package ingest_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/streams"
)

// The tests of the abuse limits (issue 12, build item 4). Clients are told
// apart by X-Forwarded-For, which the gateway believes because the test
// trusts the loopback proxy (PUSHGO_TRUSTED_PROXIES), except in
// TestClientAddressIsThePeer, which checks that without that setting the
// header counts for nothing.

var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// as posts body to path as the client at addr.
func (g *gw) as(addr, path string, body any) reply {
	g.t.Helper()
	return g.api.Send(g.t, http.MethodPost, path, body, http.Header{"X-Forwarded-For": {addr}})
}

// gatherMetrics is every metric family g's ingest exports.
func gatherMetrics(t *testing.T, g *gw) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range g.svc.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metric is the value of the ingest metric name whose label has value
// (0 when there is none).
func metric(t *testing.T, g *gw, name, label, value string) float64 {
	t.Helper()
	fams := gatherMetrics(t, g)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// hashes is how many argon2id password hashes g computed for checks.
func hashes(t *testing.T, g *gw) float64 {
	return metric(t, g, "pushgo_password_checks_total", "outcome", "verified") +
		metric(t, g, "pushgo_password_checks_total", "outcome", "mismatch")
}

func message(ch, pw string) map[string]any {
	return map[string]any{"channel_id": ch, "password": pw, "title": "disk full"}
}

// wantBackoff fails unless r is the password back-off's 429 with a
// Retry-After of at least a second, and returns that Retry-After.
func wantBackoff(t *testing.T, what string, r reply) time.Duration {
	t.Helper()
	s, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != http.StatusTooManyRequests || r.Code() != "too_many_password_failures" || err != nil || s < 1 {
		t.Fatalf("%s: want 429 too_many_password_failures with Retry-After, got %d %q %s", what, r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	return time.Duration(s) * time.Second
}

// TestPasswordGuessingBacksOff (issue 12: "password guessing:
// unthrottled, ~40 guesses/s per channel"): an address that spent its
// failed checks is answered 429 with Retry-After before any hash is
// computed, the right password too; the channel's sender and a sender who
// mistypes once are not bothered; after the back-off the right password
// works.
func TestPasswordGuessingBacksOff(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{TrustedProxies: loopbackProxy, PasswordFailuresPerAddr: 3}})
	ch := g.createChannel("guessed")
	const sender, guesser = "203.0.113.10", "198.51.100.1"
	mustOK(t, g.as(sender, "/message", message(ch, password)))

	before := hashes(t, g)
	for i := range 3 {
		wantErr(t, g.as(guesser, "/message", message(ch, fmt.Sprintf("guess-%04d", i))), 403, "password_mismatch")
	}
	wantBackoff(t, "a guess after the budget", g.as(guesser, "/message", message(ch, "guess-9999")))
	wantBackoff(t, "the right password from the guesser", g.as(guesser, "/message", message(ch, password)))
	wantBackoff(t, "a guess on another route", g.as(guesser, "/channel/rename", map[string]any{"channel_id": ch, "password": "guess-on-rename", "channel_name": "x"}))
	if n := hashes(t, g) - before; n != 3 {
		t.Errorf("%v password hashes for 3 failures and 3 refusals, want 3", n)
	}
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "password_address"); n != 3 {
		t.Errorf("password_address refusals %v, want 3", n)
	}

	// The channel's own sender keeps sending, and mistyping once costs it
	// nothing but that one answer.
	mustOK(t, g.as(sender, "/message", message(ch, password)))
	wantErr(t, g.as(sender, "/message", message(ch, "mistyped-once")), 403, "password_mismatch")
	mustOK(t, g.as(sender, "/message", message(ch, password)))

	// After the back-off the guesser's right password works.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := g.as(guesser, "/message", message(ch, password))
		if r.Status == http.StatusOK {
			break
		}
		wait := wantBackoff(t, "during the back-off", r)
		if time.Now().After(deadline) {
			t.Fatal("the back-off did not end")
		}
		time.Sleep(wait)
	}
}

// TestGuessingFromManyAddresses: guesses spread over addresses put the
// channel in back-off; a new address is refused even with the right
// password (a refusal that said "right" would be a free oracle), while the
// address that proved the password keeps sending. Another channel is not
// touched.
func TestGuessingFromManyAddresses(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{TrustedProxies: loopbackProxy, PasswordFailuresPerChannel: 4}})
	ch, other := g.createChannel("target"), g.createChannel("other")
	const sender = "203.0.113.10"
	mustOK(t, g.as(sender, "/message", message(ch, password)))
	for i := range 4 {
		wantErr(t, g.as(fmt.Sprintf("198.51.100.%d", i+1), "/message", message(ch, "guess-wrong")), 403, "password_mismatch")
	}
	before := hashes(t, g)
	wantBackoff(t, "a fifth address guessing", g.as("198.51.100.5", "/message", message(ch, "guess-wrong")))
	wantBackoff(t, "a new address with the right password", g.as("198.51.100.6", "/message", message(ch, password)))
	if n := hashes(t, g) - before; n != 0 {
		t.Errorf("%v hashes during the channel's back-off", n)
	}
	mustOK(t, g.as(sender, "/message", message(ch, password)))
	mustOK(t, g.as("198.51.100.6", "/message", message(other, password)))
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "password_channel"); n != 2 {
		t.Errorf("password_channel refusals %v, want 2", n)
	}
}

// TestClientAddressIsThePeer: without trusted proxies the client is the
// TCP peer: X-Forwarded-For cannot buy a guesser a fresh budget.
func TestClientAddressIsThePeer(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{PasswordFailuresPerAddr: 2}})
	ch := g.createChannel("peer")
	wantErr(t, g.as("198.51.100.1", "/message", message(ch, "guess-wrong")), 403, "password_mismatch")
	wantErr(t, g.as("198.51.100.2", "/message", message(ch, "guess-wrong")), 403, "password_mismatch")
	wantBackoff(t, "a third forwarded-for", g.as("198.51.100.3", "/message", message(ch, "guess-wrong")))
}

// TestChannelSyncChecksAFewFailingPasswords (issue 12: "one /channel/sync
// costs 128 argon2 hashes"): a sync checks at most 8 wrong passwords; the
// items after the eighth are not checked (password_check_skipped) nor
// subscribed. Fewer wrong passwords (a device whose channels' passwords
// were changed since its last sync) fail their own items only, and every
// other channel is subscribed, as PushGo does: the first mismatch used to
// stop the checking, and the apps (which drop the refused channel and
// ignore the other codes) stayed unsubscribed from the rest until their
// next sync.
func TestChannelSyncChecksAFewFailingPasswords(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{ChannelCreatePerMinute: 1000}})
	dev := g.register("android")
	chs := make([]string, 40)
	for i := range chs {
		chs[i] = g.createChannel(fmt.Sprintf("c%d", i))
	}
	sync := func(pw func(i int) string) reply {
		items := make([]map[string]any, len(chs))
		for i, ch := range chs {
			items[i] = map[string]any{"channel_id": ch, "password": pw(i)}
		}
		return mustOK(t, g.post("/channel/sync", map[string]any{"device_key": dev, "channels": items}))
	}

	before := hashes(t, g)
	changed := map[int]bool{1: true, 3: true}
	r := sync(func(i int) string {
		if changed[i] {
			return "wrong-password"
		}
		return password
	})
	for i, it := range r.Data["channels"].([]any) {
		item := it.(map[string]any)
		code, _ := item["error_code"].(string)
		want := map[bool]string{true: "password_mismatch"}[changed[i]]
		if code != want || item["subscribed"] != !changed[i] {
			t.Fatalf("item %d: %v, want code %q", i, item, want)
		}
	}
	if r.Data["success"] != 38.0 || r.Data["failed"] != 2.0 {
		t.Fatalf("sync %s", r.Body)
	}
	if subs, err := deviceRegistry(t, g).Channels(context.Background(), dev); err != nil || len(subs) != 38 {
		t.Fatalf("subscriptions %v %v, want the 38 channels whose password matched", subs, err)
	}
	if n := hashes(t, g) - before; n > 40 {
		t.Errorf("%v hashes for a sync of 40 channels", n)
	}

	before = hashes(t, g)
	r = sync(func(int) string { return "wrong-password" })
	for i, it := range r.Data["channels"].([]any) {
		code, _ := it.(map[string]any)["error_code"].(string)
		if want := map[bool]string{true: "password_mismatch", false: "password_check_skipped"}[i < 8]; code != want {
			t.Fatalf("all wrong, item %d: %q, want %q", i, code, want)
		}
	}
	if n := hashes(t, g) - before; n != 8 {
		t.Errorf("%v hashes for a sync of %d wrong passwords, want 8", n, len(chs))
	}
}

// TestChannelSyncPastThePasswordBudget: a sync whose own wrong passwords
// cross the address's budget of failed checks syncs the channels checked
// before that and skips the rest (password_check_skipped), instead of
// refusing the whole sync 429 with nothing written: the apps sync again
// with the same list, which would be refused again and again.
func TestChannelSyncPastThePasswordBudget(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{ChannelCreatePerMinute: 1000, PasswordFailuresPerAddr: 3}})
	dev := g.register("ios")
	chs := make([]string, 6)
	for i := range chs {
		chs[i] = g.createChannel(fmt.Sprintf("b%d", i))
	}
	items := make([]map[string]any, len(chs))
	for i, c := range chs {
		pw := password
		if i >= 1 && i <= 3 {
			pw = "wrong-password"
		}
		items[i] = map[string]any{"channel_id": c, "password": pw}
	}
	r := mustOK(t, g.post("/channel/sync", map[string]any{"device_key": dev, "channels": items}))
	got := r.Data["channels"].([]any)
	if item := got[0].(map[string]any); item["subscribed"] != true {
		t.Fatalf("the channel checked before the budget ran out: %v", item)
	}
	last, _ := got[5].(map[string]any)["error_code"].(string)
	if last != "password_check_skipped" {
		t.Fatalf("the last channel, past the budget: %v", got[5])
	}
	if subs, err := deviceRegistry(t, g).Channels(context.Background(), dev); err != nil || len(subs) != 1 || subs[0] != chs[0] {
		t.Fatalf("subscriptions %v %v, want %s", subs, err, chs[0])
	}
}

// TestAnonymousRoutesLimitedPerAddress (issue 12: "anonymous
// /device/register at 6,150/s: +1.5 MB/s of store"): /device/register and
// channel creation are token buckets per client address: past a minute's
// worth, 429 rate_limited with Retry-After and nothing stored; another
// address is not affected.
func TestAnonymousRoutesLimitedPerAddress(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{TrustedProxies: loopbackProxy,
		DeviceRegisterPerMinute: 5, ChannelCreatePerMinute: 3}})
	const a, b = "198.51.100.1", "203.0.113.1"
	reg := map[string]any{"platform": "android"}
	for range 5 {
		mustOK(t, g.as(a, "/device/register", reg))
	}
	r := g.as(a, "/device/register", reg)
	wantErr(t, r, 429, "rate_limited")
	if got := r.Header.Get("Retry-After"); got != "12" {
		t.Errorf("Retry-After %q, want 12 (5 a minute)", got)
	}
	dev := mustOK(t, g.as(b, "/device/register", reg)).Str("device_key")
	if n := devicesStored(t, g); n != 6 {
		t.Errorf("%d devices stored, want 6", n)
	}

	create := map[string]any{"channel_name": "spam", "password": password}
	for range 3 {
		mustOK(t, g.as(a, "/channel/create", create))
	}
	wantErr(t, g.as(a, "/channel/create", create), 429, "rate_limited")
	wantErr(t, g.as(a, "/channel/subscribe", map[string]any{"device_key": dev, "channel_name": "spam", "password": password}), 429, "rate_limited")
	mustOK(t, g.as(b, "/channel/subscribe", map[string]any{"device_key": dev, "channel_name": "mine", "password": password}))

	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "device_register"); n != 1 {
		t.Errorf("device_register refusals %v", n)
	}
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "channel_create"); n != 2 {
		t.Errorf("channel_create refusals %v", n)
	}
}

func devicesStored(t *testing.T, g *gw) int {
	t.Helper()
	js, _ := jetstream.New(g.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, streams.DevicesBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Values())
}

// TestCaps: a channel holds at most PUSHGO_LIMIT_TOKENS_PER_CHANNEL
// integration tokens (409 token_limit_reached; revoking one makes room)
// and the gateway at most PUSHGO_LIMIT_DEVICES devices (503
// device_limit_reached for a new one; a known device registers again).
func TestCaps(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{TokensPerChannel: 3, Devices: 4}})
	ch, other := g.createChannel("tokens"), g.createChannel("other")
	create := func(ch string) reply {
		return g.post("/channel/token/create", body(ch, "name", "grafana", "scopes", []string{"events.ingest"}))
	}
	var first string
	for i := range 3 {
		r := mustOK(t, create(ch))
		if i == 0 {
			first = r.Str("token_id")
		}
	}
	wantErr(t, create(ch), 409, "token_limit_reached")
	mustOK(t, create(other))
	mustOK(t, g.post("/channel/token/revoke", body(ch, "token_id", first)))
	mustOK(t, create(ch))

	var keys []string
	for range 4 {
		keys = append(keys, g.register("ios"))
	}
	atCap := g.post("/device/register", map[string]any{"platform": "android"})
	wantErr(t, atCap, 503, "device_limit_reached")
	// Retrying does not help until the operator acts: no Retry-After, not
	// retryable (the apps retry what says so).
	if p, _ := atCap.Object(t)["problem"].(map[string]any); atCap.Header.Get("Retry-After") != "" || p["retryable"] != false {
		t.Errorf("device_limit_reached: Retry-After %q, problem %v", atCap.Header.Get("Retry-After"), p)
	}
	wantErr(t, g.post("/device/register", map[string]any{"platform": "android", "device_key": "0123456789abcdef0123456789abcdef"}), 503, "device_limit_reached")
	if r := mustOK(t, g.post("/device/register", map[string]any{"platform": "ios", "device_key": keys[2]})); r.Str("device_key") != keys[2] {
		t.Fatalf("a known device registering again: %s", r.Body)
	}
	if n := devicesStored(t, g); n != 4 {
		t.Errorf("%d devices stored, want 4", n)
	}
	if metric(t, g, "pushgo_limit_refusals_total", "limit", "tokens_per_channel") != 1 || metric(t, g, "pushgo_limit_refusals_total", "limit", "devices") != 2 {
		t.Error("cap refusals not counted")
	}
}

// slowRequest is a request whose body never comes until finish.
type slowRequest struct {
	w    *io.PipeWriter
	done chan struct{}
	// status is the answer's, once done is closed (0: no answer).
	status int
}

// startSlow sends a POST to path as the client at addr, with headers,
// whose body stays open.
func (g *gw) startSlow(t *testing.T, addr, path string, headers map[string]string) *slowRequest {
	t.Helper()
	if addr != "" {
		h := map[string]string{"X-Forwarded-For": addr}
		maps.Copy(h, headers)
		headers = h
	}
	return g.startSlowSized(t, path, headers, -1)
}

// startSlowSized is startSlow with an announced length of n bytes (-1:
// none), none of which is sent.
func (g *gw) startSlowSized(t *testing.T, path string, headers map[string]string, n int64) *slowRequest {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, g.api.Base+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	s := &slowRequest{w: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			s.status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	t.Cleanup(s.finish)
	return s
}

// refused waits until one of slow is answered with status (while the
// others stay open): a positive sign that the others hold their places.
func refused(t *testing.T, slow []*slowRequest, status int) {
	t.Helper()
	waitFor(t, func() bool {
		for _, s := range slow {
			select {
			case <-s.done:
				if s.status != status {
					t.Fatalf("a slow request was answered %d, want %d", s.status, status)
				}
				return true
			default:
			}
		}
		return false
	})
}

func (s *slowRequest) finish() {
	_ = s.w.CloseWithError(io.ErrUnexpectedEOF)
	<-s.done
}

// TestSlowBodiesDoNotCrowdOutIntegrations (issue 12: "unauthenticated slow
// bodies on an integration route take all 1,024 shared integration slots
// before auth: Alertmanager, Dynatrace and PagerDuty are refused"): bodies
// sent slowly before their token is known hold places of their own
// client address only; authorized requests take their places once the
// token is checked, one token at most its share.
func TestSlowBodiesDoNotCrowdOutIntegrations(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{MaxIntegrationRequests: 4,
		Limits: limits.Config{TrustedProxies: loopbackProxy, UnauthenticatedReadsPerAddr: 4}})
	ch, other := g.createChannel("monitoring"), g.createChannel("greedy")
	newToken := func(ch string) string {
		return mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	}
	tok, greedy, greedy2 := newToken(ch), newToken(other), newToken(other)

	// An attacker sends five PagerDuty bodies slowly: four are read (as
	// many as the gateway serves integration requests at once) and the
	// fifth is throttled.
	const attacker = "198.51.100.66"
	var slow []*slowRequest
	for range 5 {
		slow = append(slow, g.startSlow(t, attacker, "/v2/enqueue", nil))
	}
	refused(t, slow, http.StatusTooManyRequests)

	am := `{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"DiskFull"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}`
	hdr := func(auth string) http.Header {
		return http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}, "X-Forwarded-For": {"203.0.113.5"}}
	}
	if r := g.api.Send(t, http.MethodPost, "/integrations/alertmanager", am, hdr("Bearer "+tok)); r.Status != http.StatusOK {
		t.Fatalf("Alertmanager: %d %s", r.Status, r.Body)
	}
	if r := g.api.Send(t, http.MethodPost, "/api/v2/events/ingest", `{"eventType":"CUSTOM_INFO","title":"deployed"}`, hdr("Api-Token "+tok)); r.Status != http.StatusCreated {
		t.Fatalf("Dynatrace: %d %s", r.Status, r.Body)
	}
	pd := `{"routing_key":"` + tok + `","event_action":"trigger","payload":{"summary":"disk full","source":"nas","severity":"critical"}}`
	if r := g.api.Send(t, http.MethodPost, "/v2/enqueue", pd, hdr("")); r.Status != http.StatusAccepted {
		t.Fatalf("PagerDuty: %d %s", r.Status, r.Body)
	}
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "integration_unauthenticated"); n < 1 {
		t.Errorf("integration_unauthenticated refusals %v", n)
	}

	// One token holds at most its share (a quarter of 4: one place) with
	// slow bodies of its own, and so do all the tokens of its channel
	// together; another channel's token is served.
	greedyAuth := map[string]string{"Authorization": "Bearer " + greedy}
	refused(t, []*slowRequest{g.startSlow(t, "203.0.113.7", "/integrations/alertmanager", greedyAuth),
		g.startSlow(t, "203.0.113.7", "/integrations/alertmanager", greedyAuth)}, http.StatusServiceUnavailable)
	refused(t, []*slowRequest{g.startSlow(t, "203.0.113.7", "/integrations/alertmanager",
		map[string]string{"Authorization": "Bearer " + greedy2})}, http.StatusServiceUnavailable)
	if r := g.api.Send(t, http.MethodPost, "/integrations/alertmanager", am, hdr("Bearer "+tok)); r.Status != http.StatusOK {
		t.Fatalf("Alertmanager beside a greedy channel: %d %s", r.Status, r.Body)
	}
	for _, lim := range []string{"integration_token", "integration_channel"} {
		if n := metric(t, g, "pushgo_limit_refusals_total", "limit", lim); n < 1 {
			t.Errorf("%s refusals %v", lim, n)
		}
	}
}

// TestSlowIntegrationBodyIsCut: a body that does not arrive within
// PUSHGO_LIMIT_BODY_READ is answered and its place given back.
func TestSlowIntegrationBodyIsCut(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{MaxIntegrationRequests: 1,
		Limits: limits.Config{BodyRead: 200 * time.Millisecond}})
	ch := g.createChannel("monitoring")
	tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	slow := g.startSlow(t, "", "/integrations/alertmanager", map[string]string{"Authorization": "Bearer " + tok})
	waitFor(t, func() bool { return metric(t, g, "pushgo_limit_refusals_total", "limit", "integration_body_read") == 1 })
	am := `{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}`
	// The cut request gives its place back once its answer is written,
	// just after the refusal is counted: a 503 in between is retried, as
	// Alertmanager does (a fresh clone's make test met one).
	var r reply
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = g.api.Send(t, http.MethodPost, "/integrations/alertmanager", am, http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}})
		if r.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"opened":1`) {
		t.Fatalf("after the cut body: %d %s", r.Status, r.Body)
	}
	// The cut body was answered 503: Alertmanager resends a notification
	// only on a 5xx, and a slow network is no reason to drop it.
	<-slow.done
	if slow.status != http.StatusServiceUnavailable {
		t.Errorf("the cut body was answered %d, want 503", slow.status)
	}
}

// TestSlowBodyIsAnsweredRetry: on every integration route a body cut by
// its deadline is answered as the route's overload, which its senders
// resend (PagerDuty's clients a 429, the others a 5xx), with Retry-After:
// a slow network is no reason to drop a report. Until 4 December it was
// 400, which every one of them drops.
func TestSlowBodyIsAnsweredRetry(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{BodyRead: 100 * time.Millisecond}})
	ch := g.createChannel("monitoring")
	tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	auth := map[string]string{"Authorization": "Api-Token " + tok}
	for path, want := range map[string]int{
		"/api/v2/events/ingest":      http.StatusServiceUnavailable,
		"/v1/event-bus/recv":         http.StatusServiceUnavailable,
		"/cloudevents":               http.StatusServiceUnavailable,
		"/integrations/alertmanager": http.StatusServiceUnavailable,
		"/v2/enqueue":                http.StatusTooManyRequests,
	} {
		slow := g.startSlow(t, "", path, auth)
		<-slow.done
		if slow.status != want {
			t.Errorf("%s: a cut body answered %d, want %d", path, slow.status, want)
		}
	}
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "integration_body_read"); n != 5 {
		t.Errorf("integration_body_read refusals %v, want 5", n)
	}
}

// amGroup is an Alertmanager notification of n alerts of one group, about
// 600 bytes an alert.
func amGroup(n int) string {
	alerts := make([]string, n)
	for i := range alerts {
		alerts[i] = fmt.Sprintf(`{"status":"firing","labels":{"alertname":"InstanceDown","instance":"node-%04d:9100","job":"node-exporter",`+
			`"severity":"critical","cluster":"prod-eu-west-1","namespace":"monitoring"},"annotations":{"summary":"node-%04d is down",`+
			`"description":"node-%04d:9100 of job node-exporter has not answered a scrape for more than 5 minutes.","runbook_url":`+
			`"https://runbooks.example.com/node/instancedown"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z",`+
			`"generatorURL":"http://prometheus:9090/graph?g0.expr=up%%3D%%3D0","fingerprint":"%016x"}`, i, i, i, i+1)
	}
	return `{"version":"4","status":"firing","receiver":"pushgo","groupKey":"{}:{alertname=\"InstanceDown\"}",` +
		`"groupLabels":{"alertname":"InstanceDown"},"alerts":[` + strings.Join(alerts, ",") + `]}`
}

// postUnannounced posts body to path with Transfer-Encoding chunked (no
// Content-Length), and returns the answer's status and body.
func postUnannounced(t *testing.T, g *gw, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.api.Base+path, io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLargeAlertmanagerNotifications: an Alertmanager notification up to
// PUSHGO_LIMIT_ALERTMANAGER_BODY is served, with or without its length
// announced; past it, 413 names the setting; one that does not fit the
// budget of large bodies (PUSHGO_LIMIT_LARGE_BODIES) beside another is
// answered 503 with Retry-After and appends nothing. The other
// integration routes keep their 1 MiB.
func TestLargeAlertmanagerNotifications(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{AlertmanagerBody: 3 << 20, LargeBodies: 3 << 20}})
	ch := g.createChannel("monitoring")
	tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	auth := "Api-Token " + tok
	hdr := http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}}
	group := amGroup(3000)
	if len(group) < 3<<19 || len(group) > 2<<20 {
		t.Fatalf("the group is %d bytes, want 1.5 to 2 MiB", len(group))
	}

	// Over the budget beside a slow body of 1.5 MiB: 503, nothing appended.
	before := len(streamOps(t, g.nc))
	slow := g.startSlowSized(t, "/integrations/alertmanager", map[string]string{"Authorization": auth}, 3<<19)
	waitFor(t, func() bool { return gauge(t, g, "pushgo_limit_large_body_bytes") == 3<<19 })
	r := g.api.Send(t, http.MethodPost, "/integrations/alertmanager", group, hdr)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "large request bodies") {
		t.Fatalf("beside the slow body: %d %v %s", r.Status, r.Header, r.Body)
	}
	if code, ans := postUnannounced(t, g, "/integrations/alertmanager", auth, group); code != http.StatusServiceUnavailable {
		t.Fatalf("unannounced beside the slow body: %d %s", code, ans)
	}
	if n := len(streamOps(t, g.nc)) - before; n != 0 {
		t.Fatalf("%d operations appended by refused notifications", n)
	}
	// A body of exactly 1 MiB, unannounced, needs no part of the budget.
	small := strings.ReplaceAll(amGroup(10), `"fingerprint":"0000`, `"fingerprint":"ffff`) // alerts of their own
	small += strings.Repeat(" ", 1<<20-len(small))
	if code, ans := postUnannounced(t, g, "/integrations/alertmanager", auth, small); code != http.StatusOK {
		t.Fatalf("an unannounced body of exactly 1 MiB beside the slow body: %d %.300s", code, ans)
	}
	slow.finish()
	waitFor(t, func() bool { return gauge(t, g, "pushgo_limit_large_body_bytes") == 0 })
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "integration_large_bodies"); n != 2 {
		t.Errorf("integration_large_bodies refusals %v, want 2", n)
	}

	// Served, announced and not.
	r = g.api.Send(t, http.MethodPost, "/integrations/alertmanager", group, hdr)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"opened":3000`) {
		t.Fatalf("announced: %d %.300s", r.Status, r.Body)
	}
	if code, ans := postUnannounced(t, g, "/integrations/alertmanager", auth, group); code != http.StatusOK || !strings.Contains(ans, `"unchanged":3000`) {
		t.Fatalf("unannounced: %d %.300s", code, ans)
	}

	// Past the route's own bound, announced and not: 413, naming it.
	huge := amGroup(6000)
	for _, post := range []func() (int, string){
		func() (int, string) {
			r := g.api.Send(t, http.MethodPost, "/integrations/alertmanager", huge, hdr)
			return r.Status, string(r.Body)
		},
		func() (int, string) { return postUnannounced(t, g, "/integrations/alertmanager", auth, huge) },
	} {
		if code, ans := post(); code != http.StatusRequestEntityTooLarge || !strings.Contains(ans, "larger than 3MiB (PUSHGO_LIMIT_ALERTMANAGER_BODY)") {
			t.Errorf("past the bound: %d %.300s", code, ans)
		}
	}
	// The other routes keep Dynatrace's 1 MiB.
	if code, ans := postUnannounced(t, g, "/api/v2/events/ingest", auth, group); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 1.5 MiB Dynatrace report: %d %.300s", code, ans)
	}
	if b := gauge(t, g, "pushgo_limit_large_body_bytes"); b != 0 {
		t.Errorf("%v bytes of large bodies held after every answer", b)
	}
}

// gauge is the value of the ingest gauge name (one without labels).
func gauge(t *testing.T, g *gw, name string) float64 {
	t.Helper()
	for _, f := range gatherMetrics(t, g) {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestLargeBodiesSharedBetweenChannels: one channel holds at most half of
// PUSHGO_LIMIT_LARGE_BODIES with bodies announced and sent slowly (but for
// one body alone); another channel's large notification is served beside
// them.
func TestLargeBodiesSharedBetweenChannels(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{Limits: limits.Config{AlertmanagerBody: 3 << 20, LargeBodies: 4 << 20}})
	token := func(ch string) string {
		return mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	}
	hog, fair := token(g.createChannel("hog")), token(g.createChannel("fair"))
	hogAuth := map[string]string{"Authorization": "Api-Token " + hog}
	first := g.startSlowSized(t, "/integrations/alertmanager", hogAuth, 2<<20)
	waitFor(t, func() bool { return gauge(t, g, "pushgo_limit_large_body_bytes") == 2<<20 })
	refused(t, []*slowRequest{g.startSlowSized(t, "/integrations/alertmanager", hogAuth, 2<<20)}, http.StatusServiceUnavailable)
	group := amGroup(3000)
	r := g.api.Send(t, http.MethodPost, "/integrations/alertmanager", group,
		http.Header{"Authorization": {"Api-Token " + fair}, "Content-Type": {"application/json"}})
	if r.Status != http.StatusOK {
		t.Fatalf("another channel's %d-byte notification beside the hog's: %d %.300s", len(group), r.Status, r.Body)
	}
	first.finish()
}

// TestFailedTokenChecksBackOff (DESIGN: failed credentials are rate
// limited): an address that sent PUSHGO_LIMIT_AUTH_FAILURES wrong tokens
// in a minute, PUSHGO_TOKEN or integration tokens, is refused 429 with
// Retry-After before any check, its right token included; another address
// is not.
func TestFailedTokenChecksBackOff(t *testing.T) {
	const gatewayToken = "the-gateway-token-0123456789"
	g := startIngest(t, startBroker(t), ingest.Config{Token: gatewayToken,
		Limits: limits.Config{TrustedProxies: loopbackProxy, AuthFailuresPerMinute: 3}})
	from := func(addr, auth string) http.Header {
		return http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}, "X-Forwarded-For": {addr}}
	}
	msg := `{"channel_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","password":"correct-horse","title":"t"}`
	const guesser, other = "198.51.100.9", "203.0.113.9"
	for i := range 3 {
		if r := g.api.Send(t, http.MethodPost, "/message", msg, from(guesser, "Bearer wrong-"+fmt.Sprint(i))); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := g.api.Send(t, http.MethodPost, "/message", msg, from(guesser, "Bearer "+gatewayToken))
	if r.Status != http.StatusTooManyRequests || r.Code() != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the guessing address past its failures: %d %v %s", r.Status, r.Header, r.Body)
	}
	// Another address is checked (and its right token passes the front:
	// the channel is unknown, 404).
	if r := g.api.Send(t, http.MethodPost, "/message", msg, from(other, "Bearer "+gatewayToken)); r.Status != http.StatusNotFound {
		t.Fatalf("another address: %d %s", r.Status, r.Body)
	}
	// Integration tokens count the same, per address (Dynatrace answers
	// in its own shape).
	dtAPI := &apitest.Client{Base: g.api.Base}
	dt := `{"eventType":"CUSTOM_INFO","title":"deployed"}`
	for i := range 3 {
		tok := fmt.Sprintf("Api-Token pgo1.%s.%064x", "abcdefghijkl"[:12], i)
		if r := dtAPI.Send(t, http.MethodPost, "/api/v2/events/ingest", dt, from(other, tok)); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong integration token %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := dtAPI.Send(t, http.MethodPost, "/api/v2/events/ingest", dt, from(other, "Api-Token pgo1.abcdefghijkl.00")); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the address past its failed integration tokens: %d %v %s", r.Status, r.Header, r.Body)
	}
	if n := metric(t, g, "pushgo_limit_refusals_total", "limit", "auth_failures"); n != 2 {
		t.Errorf("auth_failures refusals %v, want 2", n)
	}
}
