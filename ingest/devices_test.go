package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/delivery"
	schema "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/streams"
)

var hexKey = regexp.MustCompile(`^[0-9a-f]{32}$`)

const (
	apnsTok = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	fcmTok  = "fcm-token:APA91bH_example-0123456789"
)

// deviceRegistry opens a second view of the registry buckets, as the pusher
// will: what it reads is what ingest stored.
func deviceRegistry(t *testing.T, g *gw) *devices.Registry {
	t.Helper()
	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := devices.Open(ctx, js, devices.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (g *gw) register(platform string) string {
	g.t.Helper()
	r := mustOK(g.t, g.post("/device/register", map[string]any{"platform": platform}))
	return r.Str("device_key")
}

func wantErr(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.Code() != code {
		t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Body)
	}
}

func device(t *testing.T, reg *devices.Registry, key string) schema.Device {
	t.Helper()
	d, ok, err := reg.Device(context.Background(), key)
	if err != nil || !ok {
		t.Fatalf("device %s: ok=%v err=%v", key, ok, err)
	}
	return d
}

func TestDeviceRegister(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	reg := deviceRegistry(t, g)

	r := mustOK(t, g.post("/device/register", map[string]any{"platform": "ios"}))
	key := r.Str("device_key")
	if !hexKey.MatchString(key) || r.Data["issued_new_key"] != true || r.Str("issue_reason") != "missing" {
		t.Fatalf("new device: %s", r.Body)
	}
	if d := device(t, reg, key); d.Platform != "ios" || d.HasRoute() {
		t.Fatalf("stored %+v", d)
	}

	// An existing key (any case) is kept; the platform is updated.
	r = mustOK(t, g.post("/device/register", map[string]any{"device_key": strings.ToUpper(key), "platform": "ipados"}))
	if r.Str("device_key") != key || r.Data["issued_new_key"] != false {
		t.Fatalf("existing device: %s", r.Body)
	}
	if _, has := r.Data["issue_reason"]; has {
		t.Fatalf("issue_reason on an existing key: %s", r.Body)
	}
	if d := device(t, reg, key); d.Platform != "ipados" {
		t.Fatalf("platform not updated: %+v", d)
	}

	// An unknown key gets a new one.
	unknown := "ffffffffffffffffffffffffffffffff"
	r = mustOK(t, g.post("/device/register", map[string]any{"device_key": unknown, "platform": "android"}))
	if nk := r.Str("device_key"); nk == unknown || !hexKey.MatchString(nk) || r.Data["issued_new_key"] != true || r.Str("issue_reason") != "unknown" {
		t.Fatalf("unknown key: %s", r.Body)
	}

	wantErr(t, g.post("/device/register", map[string]any{"platform": "windows"}), 400, "invalid_platform")
	wantErr(t, g.post("/device/register", map[string]any{}), 400, "platform_required")
	wantErr(t, g.post("/device/register", map[string]any{"device_key": "abc", "platform": "ios"}), 400, "invalid_device_key")
	wantErr(t, g.post("/device/register", map[string]any{"platform": "ios", "name": "x"}), 400, "invalid_json_data")
	wantErr(t, g.post("/device/register", `{"platform":"ios","platform":"ios"}`), 400, "invalid_json_data")
}

func TestDeviceRoutes(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	reg := deviceRegistry(t, g)
	ios, android := g.register("ios"), g.register("android")

	bind := func(key, ct, tok string, kv ...any) reply {
		b := map[string]any{"device_key": key, "channel_type": ct, "provider_token": tok}
		for i := 0; i+1 < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1]
		}
		return g.post("/channel/device", b)
	}

	r := mustOK(t, bind(ios, "apns", strings.ToUpper(apnsTok)))
	if r.Str("device_key") != ios || r.Str("channel_type") != "apns" {
		t.Fatalf("bind: %s", r.Body)
	}
	if d := device(t, reg, ios); d.ChannelType != "apns" || d.ProviderToken != apnsTok {
		t.Fatalf("stored %+v", d)
	}
	wantErr(t, bind(android, "apns", apnsTok), 400, "channel_type_platform_mismatch") // registered platform
	wantErr(t, bind(ios, "fcm", fcmTok), 400, "channel_type_platform_mismatch")
	wantErr(t, bind(ios, "fcm", fcmTok, "platform", "ios"), 400, "channel_type_platform_mismatch") // sent platform
	// An unknown device key is device_key_not_found (it was device_not_found):
	// the code on which the apps register again (Apple
	// ChannelSubscriptionController.swift, Android PrivateChannelClient.kt).
	wantErr(t, bind("0123456789abcdef0123456789abcdef", "apns", apnsTok), 404, "device_key_not_found")
	wantErr(t, bind(ios, "apns", "not-hex"), 400, "invalid_provider_token")
	wantErr(t, bind(ios, "wns", apnsTok), 400, "invalid_channel_type")
	if d := device(t, reg, ios); d.ChannelType != "apns" || d.ProviderToken != apnsTok {
		t.Fatalf("a rejected bind changed the route: %+v", d)
	}
	mustOK(t, bind(android, "fcm", fcmTok))

	// platform with the bind re-platforms the device.
	mac := g.register("ios")
	mustOK(t, bind(mac, "apns", strings.Repeat("ab", 32), "platform", "macos"))
	if d := device(t, reg, mac); d.Platform != "macos" {
		t.Fatalf("platform %+v", d)
	}

	// Delete: wrong channel type removes nothing; the right one removes.
	r = mustOK(t, g.post("/channel/device/delete", map[string]any{"device_key": android, "channel_type": "apns"}))
	if r.Data["removed"] != false {
		t.Fatalf("delete apns of an fcm device: %s", r.Body)
	}
	r = mustOK(t, g.post("/channel/device/delete", map[string]any{"device_key": android, "channel_type": "fcm"}))
	if r.Data["removed"] != true || r.Str("channel_type") != "fcm" {
		t.Fatalf("delete: %s", r.Body)
	}
	if d := device(t, reg, android); d.HasRoute() {
		t.Fatalf("route kept: %+v", d)
	}
	wantErr(t, g.post("/channel/device/delete", map[string]any{"device_key": "0123456789abcdef0123456789abcdef", "channel_type": "fcm"}), 404, "device_key_not_found")

	// Retire: the device holding the token loses its route.
	r = mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "ios", "provider_token": apnsTok}))
	if r.Data["retired"] != true {
		t.Fatalf("retire: %s", r.Body)
	}
	if d := device(t, reg, ios); d.HasRoute() || d.RetiredAt == 0 {
		t.Fatalf("retired route kept: %+v", d)
	}
	// An unknown token retires nothing, and says so the PushGo way.
	r = mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": "never-bound"}))
	if r.Data["retired"] != true {
		t.Fatalf("retire unknown: %s", r.Body)
	}
	if d := device(t, reg, mac); !d.HasRoute() {
		t.Fatalf("another device lost its route: %+v", d)
	}
	wantErr(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "ios", "provider_token": "zz"}), 400, "invalid_provider_token")

	// A token rebound to another device leaves the first one.
	other := g.register("ios")
	mustOK(t, bind(ios, "apns", apnsTok))
	mustOK(t, bind(other, "apns", apnsTok))
	if d := device(t, reg, ios); d.HasRoute() {
		t.Fatalf("token now held by two devices: %+v", d)
	}
	mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "ipados", "provider_token": apnsTok}))
	if d := device(t, reg, other); d.HasRoute() {
		t.Fatalf("retire missed the new holder: %+v", d)
	}
}

func TestSubscribe(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	reg := deviceRegistry(t, g)
	dev := g.register("ios")
	ch := g.createChannel("existing")

	sub := func(kv ...any) reply {
		b := map[string]any{"device_key": dev, "password": password}
		for i := 0; i+1 < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1]
		}
		return g.post("/channel/subscribe", b)
	}

	r := mustOK(t, sub("channel_id", strings.ToLower(ch)))
	if r.Str("channel_id") != ch || r.Str("channel_name") != "existing" || r.Data["created"] != false || r.Data["subscribed"] != true {
		t.Fatalf("join: %s", r.Body)
	}
	mustOK(t, sub("channel_id", ch)) // idempotent
	wantErr(t, sub("channel_id", ch, "password", "wrong-password"), 403, "password_mismatch")
	wantErr(t, sub("channel_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "channel_not_found")
	wantErr(t, sub("channel_id", ch, "channel_name", "both"), 400, "channel_binding_invalid")
	wantErr(t, sub(), 400, "channel_binding_invalid")
	wantErr(t, sub("channel_id", ch, "device_key", "0123456789abcdef0123456789abcdef"), 404, "device_key_not_found")
	wantErr(t, sub("channel_name", "never-made", "device_key", "0123456789abcdef0123456789abcdef"), 404, "device_key_not_found")

	r = mustOK(t, sub("channel_name", "  made by a device "))
	made := r.Str("channel_id")
	if r.Str("channel_name") != "made by a device" || r.Data["created"] != true || r.Data["subscribed"] != true || made == "" {
		t.Fatalf("create and join: %s", r.Body)
	}
	// The channel is a real one: a sender can use it with the password.
	mustOK(t, g.post("/message", map[string]any{"channel_id": made, "password": password, "title": "hi"}))

	ctx := context.Background()
	if chs, err := reg.Channels(ctx, dev); err != nil || strings.Join(chs, ",") != strings.Join(sorted(ch, made), ",") {
		t.Fatalf("channels of device %v %v", chs, err)
	}
	if subs, err := reg.Subscribers(ctx, ch); err != nil || len(subs) != 1 || subs[0] != dev {
		t.Fatalf("subscribers %v %v", subs, err)
	}

	r = mustOK(t, g.post("/channel/unsubscribe", map[string]any{"device_key": dev, "channel_id": ch}))
	if r.Str("channel_id") != ch || r.Data["removed"] != true {
		t.Fatalf("unsubscribe: %s", r.Body)
	}
	r = mustOK(t, g.post("/channel/unsubscribe", map[string]any{"device_key": dev, "channel_id": ch}))
	if r.Data["removed"] != false {
		t.Fatalf("second unsubscribe: %s", r.Body)
	}
	if subs, _ := reg.Subscribers(ctx, ch); len(subs) != 0 {
		t.Fatalf("subscribers after unsubscribe %v", subs)
	}
	if chs, _ := reg.Channels(ctx, dev); len(chs) != 1 || chs[0] != made {
		t.Fatalf("device index after unsubscribe %v", chs)
	}
	wantErr(t, g.post("/channel/unsubscribe", map[string]any{"device_key": "0123456789abcdef0123456789abcdef", "channel_id": ch}), 404, "device_key_not_found")
	wantErr(t, g.post("/channel/unsubscribe", map[string]any{"device_key": dev, "channel_id": ch, "password": password}), 400, "invalid_json_data")

	// Subscribing again after an unsubscribe works (create over a delete marker).
	mustOK(t, sub("channel_id", ch))
	if subs, _ := reg.Subscribers(ctx, ch); len(subs) != 1 {
		t.Fatalf("resubscribe %v", subs)
	}
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSync(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	reg := deviceRegistry(t, g)
	ctx := context.Background()
	dev := g.register("android")
	a, b, c := g.createChannel("a"), g.createChannel("b"), g.createChannel("c")
	for _, ch := range []string{a, b, c} {
		mustOK(t, g.post("/channel/subscribe", map[string]any{"device_key": dev, "password": password, "channel_id": ch}))
	}
	d := g.createChannel("d")
	item := func(id, pw string) map[string]any { return map[string]any{"channel_id": id, "password": pw} }
	syncReq := func(items ...map[string]any) reply {
		if items == nil {
			items = []map[string]any{} // [] rather than null
		}
		return g.post("/channel/sync", map[string]any{"device_key": dev, "channels": items})
	}

	// One bad password: the good item is subscribed, nothing is removed.
	r := mustOK(t, syncReq(item(a, password), item(d, password), item(b, "wrong-password")))
	items := r.Data["channels"].([]any)
	if len(items) != 3 {
		t.Fatalf("items %s", r.Body)
	}
	for i, want := range []struct {
		id   string
		ok   bool
		code string
	}{{a, true, ""}, {d, true, ""}, {b, false, "password_mismatch"}} {
		it := items[i].(map[string]any)
		code, _ := it["error_code"].(string)
		if it["channel_id"] != want.id || it["subscribed"] != want.ok || code != want.code {
			t.Fatalf("item %d: %v", i, it)
		}
	}
	if un := r.Data["unsubscribed"].([]any); len(un) != 0 {
		t.Fatalf("unsubscribed after a failed item: %s", r.Body)
	}
	if chs, _ := reg.Channels(ctx, dev); strings.Join(chs, ",") != strings.Join(sorted(a, b, c, d), ",") {
		t.Fatalf("after failed sync %v", chs)
	}

	// An unknown channel fails its item the same way.
	r = mustOK(t, syncReq(item(a, password), item("01ARZ3NDEKTSV4RRFFQ69G5FAV", password)))
	if it := r.Data["channels"].([]any)[1].(map[string]any); it["error_code"] != "channel_not_found" || it["subscribed"] != false {
		t.Fatalf("unknown channel item: %s", r.Body)
	}
	if chs, _ := reg.Channels(ctx, dev); len(chs) != 4 {
		t.Fatalf("after failed sync %v", chs)
	}

	// All good: unlisted channels are removed.
	r = mustOK(t, syncReq(item(a, password), item(d, password)))
	un := r.Data["unsubscribed"].([]any)
	got := []string{}
	for _, u := range un {
		got = append(got, u.(string))
	}
	if strings.Join(got, ",") != strings.Join(sorted(b, c), ",") {
		t.Fatalf("unsubscribed %v, want %v", got, sorted(b, c))
	}
	if chs, _ := reg.Channels(ctx, dev); strings.Join(chs, ",") != strings.Join(sorted(a, d), ",") {
		t.Fatalf("after sync %v", chs)
	}
	for ch, want := range map[string]int{a: 1, b: 0, c: 0, d: 1} {
		if subs, _ := reg.Subscribers(ctx, ch); len(subs) != want {
			t.Fatalf("subscribers of %s: %v", ch, subs)
		}
	}

	// Rejections before any write.
	wantErr(t, g.post("/channel/sync", map[string]any{"device_key": dev}), 400, "invalid_channels")
	wantErr(t, syncReq(item(a, password), item(a, password)), 400, "invalid_channels")
	// A malformed item fails alone, as PushGo's sync.rs answers it in the
	// item (this used to reject the whole request), and since an item
	// failed nothing is unsubscribed.
	r = mustOK(t, syncReq(item("bad", password), item(a, password)))
	if it := r.Data["channels"].([]any)[0].(map[string]any); it["error_code"] != "invalid_channel_id" || it["subscribed"] != false || it["channel_id"] != "bad" ||
		r.Data["failed"] != 1.0 || r.Data["success"] != 1.0 || len(r.Data["unsubscribed"].([]any)) != 0 {
		t.Fatalf("malformed item: %s", r.Body)
	}
	wantErr(t, g.post("/channel/sync", map[string]any{"device_key": "0123456789abcdef0123456789abcdef", "channels": []any{}}), 404, "device_key_not_found")
	if chs, _ := reg.Channels(ctx, dev); len(chs) != 2 {
		t.Fatalf("a rejected sync changed subscriptions: %v", chs)
	}

	// The empty list unsubscribes everything.
	r = mustOK(t, syncReq())
	if un := r.Data["unsubscribed"].([]any); len(un) != 2 {
		t.Fatalf("empty sync: %s", r.Body)
	}
	if chs, _ := reg.Channels(ctx, dev); len(chs) != 0 {
		t.Fatalf("after empty sync %v", chs)
	}
}

// TestConcurrentSubscribe: 50 devices joining one channel at once all land,
// on two ingest replicas sharing the broker.
func TestConcurrentSubscribe(t *testing.T) {
	b := startBroker(t)
	g1 := startIngest(t, b, ingest.Config{})
	g2 := startIngest(t, b, ingest.Config{})
	ch := g1.createChannel("crowd")
	const n = 50
	keys := make([]string, n)
	for i := range keys {
		keys[i] = g1.register([]string{"ios", "android"}[i%2])
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i, k := range keys {
		g := []*gw{g1, g2}[i%2]
		wg.Go(func() {
			r := g.post("/channel/subscribe", map[string]any{"device_key": k, "password": password, "channel_id": ch})
			if r.Status != 200 || r.Data["subscribed"] != true {
				errs <- fmt.Sprintf("%s: %d %s", k, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	subs, err := deviceRegistry(t, g1).Subscribers(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(subs, ",") != strings.Join(sorted(keys...), ",") {
		t.Fatalf("%d subscribers, want %d", len(subs), n)
	}
}

// TestDeviceRoutesNoSecretsInLogs: passwords and provider tokens never
// reach a log line, also when the registry fails.
func TestDeviceRoutesNoSecretsInLogs(t *testing.T) {
	logs := &deviceLogBuffer{}
	g := startIngest(t, startBroker(t), ingest.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	dev := g.register("ios")
	mustOK(t, g.post("/channel/device", map[string]any{"device_key": dev, "channel_type": "apns", "provider_token": apnsTok}))
	mustOK(t, g.post("/channel/subscribe", map[string]any{"device_key": dev, "password": password, "channel_name": "n"}))
	g.post("/channel/subscribe", map[string]any{"device_key": dev, "password": "wrong-password", "channel_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
	mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "ios", "provider_token": apnsTok}))
	out := logs.String()
	for _, secret := range []string{password, "wrong-password", apnsTok} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q in logs:\n%s", secret, out)
		}
	}
}

// TestPrivateChannelRefusalIsNoServerError: the private transport's 503
// (PushGo's answer for a transport this gateway does not serve, which the
// apps ask for again and again) is logged as no server error; a 5xx of a
// failure is.
func TestPrivateChannelRefusalIsNoServerError(t *testing.T) {
	logs := &deviceLogBuffer{}
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	wantErr(t, g.post("/device/register", map[string]any{"platform": "android", "channel_type": "private"}), 503, "private_channel_disabled")
	if strings.Contains(logs.String(), "http: server error") {
		t.Fatalf("the private channel's refusal logged as a server error:\n%s", logs.String())
	}
	if err := b.JS.DeleteKeyValue(context.Background(), streams.DevicesBucket); err != nil {
		t.Fatal(err)
	}
	r := g.post("/device/register", map[string]any{"platform": "android", "channel_type": "fcm", "provider_token": fcmTok})
	if r.Status < 500 || !strings.Contains(logs.String(), "http: server error") {
		t.Fatalf("a register with the devices bucket gone: %d %s; logs:\n%s", r.Status, r.Body, logs.String())
	}
}

// TestGatewayProfileSaysThePrivateChannelIsOff: GET /gateway/profile
// answers PushGo's profile of a gateway without its private module, both
// flags false and no transport: the Android app reads it
// (PrivateChannelClient.kt parseGatewayProfileSnapshot) and takes the
// private mode off its settings only on false; a 404 left it offering a
// transport every /channel/device then refused.
func TestGatewayProfileSaysThePrivateChannelIsOff(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	r := mustOK(t, g.api.Get(t, "/gateway/profile", nil))
	d := r.Envelope.Data
	if d["private_channel_enabled"] != false || d["private_enabled"] != false || len(d) != 2 {
		t.Fatalf("/gateway/profile: %s, want both private flags false and nothing else (no transport hints)", r)
	}
}

// deviceLogBuffer collects log output from concurrent handlers.
type deviceLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *deviceLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *deviceLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDeviceRoutesPushGoForms: the PushGo forms of the device routes:
// /device/register with channel_type binds the route, the private
// transport is refused with PushGo's code, and a retirement limited to a
// device_key leaves a token another device holds now.
func TestDeviceRoutesPushGoForms(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	reg := deviceRegistry(t, g)

	r := mustOK(t, g.post("/device/register", map[string]any{"platform": "android", "channel_type": "FCM", "provider_token": fcmTok}))
	first := r.Str("device_key")
	if r.Str("channel_type") != "fcm" || r.Data["issued_new_key"] != true {
		t.Fatalf("register with route: %s", r.Body)
	}
	if d := device(t, reg, first); d.ChannelType != "fcm" || d.ProviderToken != fcmTok {
		t.Fatalf("stored %+v", d)
	}
	// Registering the known key again with its route is idempotent.
	r = mustOK(t, g.post("/device/register", map[string]any{"device_key": first, "platform": "android", "channel_type": "fcm", "provider_token": fcmTok}))
	if r.Str("device_key") != first || r.Data["issued_new_key"] != false {
		t.Fatalf("again: %s", r.Body)
	}
	wantErr(t, g.post("/device/register", map[string]any{"platform": "android", "channel_type": "private"}), 503, "private_channel_disabled")
	wantErr(t, g.post("/channel/device", map[string]any{"device_key": first, "channel_type": "private"}), 503, "private_channel_disabled")
	wantErr(t, g.post("/device/register", map[string]any{"platform": "android", "provider_token": fcmTok}), 400, "channel_type_required")
	wantErr(t, g.post("/device/register", map[string]any{"platform": "ios", "channel_type": "fcm", "provider_token": fcmTok}), 400, "channel_type_platform_mismatch")
	if d := device(t, reg, first); d.ChannelType != "fcm" {
		t.Fatalf("a refused private route changed the route: %+v", d)
	}

	// The token moves to a second device; the first device's retirement of
	// it (its device_key) leaves the second one's route.
	second := g.register("android")
	mustOK(t, g.post("/channel/device", map[string]any{"device_key": second, "channel_type": "fcm", "provider_token": fcmTok}))
	r = mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": fcmTok, "device_key": first, "channel_type": "fcm"}))
	if r.Data["retired"] != true {
		t.Fatalf("retire: %s", r.Body)
	}
	if d := device(t, reg, second); !d.HasRoute() {
		t.Fatalf("the holder lost its route: %+v", d)
	}
	mustOK(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": fcmTok, "device_key": second}))
	if d := device(t, reg, second); d.HasRoute() {
		t.Fatalf("route kept: %+v", d)
	}
	wantErr(t, g.post("/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": fcmTok, "channel_type": "apns"}), 400, "channel_type_platform_mismatch")

	// Deleting a private route (the Android app does when it leaves a
	// gateway) removes nothing; of an unknown device it is
	// device_key_not_found.
	r = mustOK(t, g.post("/channel/device/delete", map[string]any{"device_key": second, "channel_type": "private"}))
	if r.Data["removed"] != false {
		t.Fatalf("delete private: %s", r.Body)
	}
	wantErr(t, g.post("/channel/device/delete", map[string]any{"device_key": "0123456789abcdef0123456789abcdef", "channel_type": "private"}), 404, "device_key_not_found")
}

// TestInboxRoutes: the v2 pull of one delivery_id and PushGo's legacy pull
// and ack, against items stored as the pusher stores them.
func TestInboxRoutes(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	dev := g.register("android")
	js, _ := jetstream.New(g.nc)
	put := func(seq uint64) string {
		id := delivery.ID(seq, dev)
		m := nats.NewMsg(streams.InboxSubject(dev))
		m.Header.Set(streams.HeaderInboxSeq, fmt.Sprint(seq))
		m.Data, _ = json.Marshal(delivery.InboxItem{DeliveryID: id, Payload: map[string]string{"title": fmt.Sprint("item ", seq)}})
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := put(3), put(5)

	r := mustOK(t, g.post("/v2/messages/pull", map[string]any{"device_key": dev, "delivery_id": " " + b + " "}))
	if items := r.Data["items"].([]any); len(items) != 1 || items[0].(map[string]any)["delivery_id"] != b || r.Data["has_more"] != false {
		t.Fatalf("v2 pull of one: %s", r.Body)
	}
	wantErr(t, g.post("/v2/messages/pull", map[string]any{"device_key": dev, "delivery_id": b, "after": a}), 400, "invalid_json_data")
	wantErr(t, g.post("/v2/messages/pull", map[string]any{"device_key": dev, "delivery_id": ""}), 400, "delivery_id_required")
	// A device key never registered has an empty inbox, as in PushGo 1.3
	// (core/pull.rs and ack.rs check the key's format only).
	if r := mustOK(t, g.post("/v2/messages/pull", map[string]any{"device_key": "0123456789abcdef0123456789abcdef"})); len(r.Data["items"].([]any)) != 0 || r.Data["has_more"] != false {
		t.Fatalf("v2 pull of an unknown device: %s", r.Body)
	}
	if r := mustOK(t, g.post("/v2/messages/ack", map[string]any{"device_key": "0123456789abcdef0123456789abcdef", "delivery_ids": []string{a}})); r.Data["removed_count"] != float64(0) {
		t.Fatalf("v2 ack of an unknown device: %s", r.Body)
	}
	wantErr(t, g.post("/v2/messages/pull", map[string]any{"device_key": "not a key"}), 400, "invalid_device_key")
	// Still there: v2 pull is not destructive.
	if r := mustOK(t, g.post("/v2/messages/pull", map[string]any{"device_key": dev})); len(r.Data["items"].([]any)) != 2 {
		t.Fatalf("v2 pull: %s", r.Body)
	}

	// Legacy: pulling one removes it; the ack after finds nothing.
	r = mustOK(t, g.post("/messages/pull", map[string]any{"device_key": dev, "delivery_id": a}))
	if items := r.Data["items"].([]any); len(items) != 1 || items[0].(map[string]any)["delivery_id"] != a {
		t.Fatalf("legacy pull of one: %s", r.Body)
	}
	if _, has := r.Data["has_more"]; has {
		t.Fatalf("legacy pull answers PushGo's {items} only: %s", r.Body)
	}
	if r := mustOK(t, g.post("/messages/ack", map[string]any{"device_key": dev, "delivery_id": a})); r.Data["removed"] != false {
		t.Fatalf("legacy ack after the pull: %s", r.Body)
	}
	if r := mustOK(t, g.post("/messages/ack", map[string]any{"device_key": dev, "delivery_id": b})); r.Data["removed"] != true {
		t.Fatalf("legacy ack: %s", r.Body)
	}
	if r := mustOK(t, g.post("/messages/pull", map[string]any{"device_key": dev})); len(r.Data["items"].([]any)) != 0 {
		t.Fatalf("legacy pull of an empty inbox: %s", r.Body)
	}
	// As PushGo: a device the gateway does not know has no items.
	if r := mustOK(t, g.post("/messages/pull", map[string]any{"device_key": "0123456789abcdef0123456789abcdef"})); len(r.Data["items"].([]any)) != 0 {
		t.Fatalf("unknown device: %s", r.Body)
	}
	wantErr(t, g.post("/messages/ack", map[string]any{"device_key": dev}), 400, "delivery_id_required")
	wantErr(t, g.post("/messages/pull", map[string]any{"device_key": "nope"}), 400, "invalid_device_key")
	wantErr(t, g.post("/messages/pull", map[string]any{"device_key": dev, "limit": 3}), 400, "invalid_json_data")
}
