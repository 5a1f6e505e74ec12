// Package appcontract_test holds the route answers of the gateway to the
// contract of the real PushGo clients: for every key and shape the apps
// read from the device, channel and inbox routes (and the error envelope
// of every route), a test asserts our answer carries it in the format the
// app decodes. Each expectation names the app file and line it comes from,
// in the sources read at these commits:
//
//	AldenClark/pushgo           (Apple: iOS, iPadOS, macOS, watchOS)  655a88113a838235425f3aecc2e7bd764e3960c4
//	AldenClark/pushgo-android   (Android, main: the 1.2 line)         14b6993fa375873741c6929601e5f1243ba7300c
//	AldenClark/pushgo-android   tag v1.2.0-beta.9                     0863db9bc647fb53f44f2c7414d005123ef11e32
//	AldenClark/pushgo-gateway   (the PushGo gateway, v1.2.9)          1f9d6c270597aa02c3dec9f02bf3416b00207171
//	AldenClark/pushgo-gateway   src/api/handlers/send_status.rs (1.3) a6cee6cf1afa0d4331ae1eef308a80930b9e728a
//
// How the apps decode: the Apple app with Swift Decodable (a required key
// that is missing, null or of another type fails the whole answer; an
// unknown enum value too); the Android app with org.json as Android ships
// it, whose optString turns a JSON null into the string "null" (so a key
// the app tests for emptiness must be absent, never null).
package appcontract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// Where each expectation comes from (file:line in the commits above).
const (
	// Apple, Shared/Services/ChannelSubscriptionService.swift
	appleStatusResponse  = "Apple ChannelSubscriptionService.swift:164-178 (StatusResponse: success Bool, error String?, error_code String?, problem GatewayProblemPayload?, data T?)"
	appleDecodeOK        = "Apple ChannelSubscriptionService.swift:886 (success and a non-null data, else an error)"
	appleRegister        = "Apple ChannelSubscriptionService.swift:32-37 (DeviceRegisterPayload: device_key String)"
	appleDeviceChannel   = "Apple ChannelSubscriptionService.swift:40-49 (DeviceChannelPayload: device_key String, channel_type String?, provider_token String?)"
	appleEmptyPayload    = "Apple ChannelSubscriptionService.swift:517,546 (delete and retire decode EmptyPayload: data must be present)"
	appleSubscribe       = "Apple ChannelSubscriptionService.swift:194-205 (SubscribePayload: channel_id, channel_name String, created, subscribed Bool)"
	appleUnsubscribe     = "Apple ChannelSubscriptionService.swift:218-225 (UnsubscribePayload: channel_id String, removed Bool)"
	appleSyncPayload     = "Apple ChannelSubscriptionService.swift:282-285 (SyncPayload: success Int, failed Int, channels [SyncResult])"
	appleSyncResult      = "Apple ChannelSubscriptionService.swift:288-303 (SyncResult: channel_id String, channel_name String?, subscribed Bool, error String?, error_code String?, problem?)"
	appleResolvedCode    = "Apple ChannelSubscriptionService.swift:305-311 (resolvedErrorCode: problem.code first, then error_code)"
	applePullResponse    = "Apple ChannelSubscriptionService.swift:106-124 (PullResponse: items [{delivery_id String, payload [String: String]}], has_more Bool?)"
	applePullRequest     = "Apple ChannelSubscriptionService.swift:96-103 (PullRequest: device_key, delivery_id)"
	appleBatchAck        = "Apple ChannelSubscriptionService.swift:150-157,720 (requested_count, removed_count Int; requested_count must equal the ids sent)"
	appleAckResponse     = "Apple ChannelSubscriptionService.swift:146-147 (legacy AckResponse: removed Bool)"
	appleLegacyFallback  = "Apple ChannelSubscriptionService.swift:568-580 (v2 pull falls back to /messages/pull only on 404 route_not_found)"
	appleAcceptLanguage  = "Apple ChannelSubscriptionService.swift:322-373 (Accept-Language: preferred languages in order, zh as zh-CN, then en)"
	appleProblem         = "Apple Shared/Models/AppError.swift:18-40 (GatewayProblemPayload: code String?, category enum, status Int, title, detail, localized_message, locale String?, retryable Bool, request_id String?)"
	appleCategories      = "Apple Shared/Models/AppError.swift:3-16 (GatewayErrorCategory: the values a category may take)"
	appleDeviceKeyRetry  = "Apple Shared/Application/ChannelSubscriptionController.swift:317 (register again on device_key_not_found)"
	appleSyncCodes       = "Apple Shared/Application/ChannelSyncController.swift:300-316 (subscribed items take channel_name; channel_not_found and password_mismatch drop the channel)"
	appleWatchPull       = "Apple Extensions/PushGoNSE-watchOS/WatchNotificationServiceProcessor.swift:611 (pulls again while items are empty and has_more is true)"
	appleWatchBatchAck   = "Apple Extensions/PushGoNSE-watchOS/WatchNotificationServiceProcessor.swift:725 (removed_count must equal requested_count)"
	appleWatchRouteCheck = "Apple Extensions/PushGoNSE-watchOS/WatchNotificationServiceProcessor.swift:675-676 (error_code or problem.code route_not_found with 404)"

	// Android, app/src/main/java/io/ethan/pushgo/...
	androidExecute       = "Android data/ChannelSubscriptionService.kt:428-438 (optString(\"error\") or optString(\"error_code\") non-empty is a failure)"
	androidAuth          = "Android data/ChannelSubscriptionService.kt:423 (401 and 403 are \"Auth failed\")"
	androidRegister      = "Android data/ChannelSubscriptionService.kt:164 (device_key of /device/register)"
	androidRoute         = "Android data/ChannelSubscriptionService.kt:194 (device_key of /channel/device)"
	androidSubscribe     = "Android data/ChannelSubscriptionService.kt:121-124 (created, subscribed, channel_id, channel_name)"
	androidUnsubscribe   = "Android data/ChannelSubscriptionService.kt:146 (removed)"
	androidSync          = "Android data/ChannelSubscriptionService.kt:343-364 (channels[].channel_id, channel_name, subscribed, error_code, error; success, failed)"
	androidSyncCodes     = "Android data/ChannelSubscriptionRepository.kt:259-261 (channel_not_found and password_mismatch drop the channel)"
	androidPull          = "Android data/ChannelSubscriptionService.kt:70,255-263 (POST /messages/pull: items[].payload object of strings, items[].delivery_id)"
	androidAck           = "Android data/ChannelSubscriptionService.kt:71,295 (POST /messages/ack: removed)"
	androidDeviceKeyGone = "Android data/ChannelSubscriptionRepository.kt:402 and notifications/PrivateChannelClient.kt:2002 (register again when the message has device_key_not_found)"
	androidPrivate       = "Android notifications/PrivateChannelClient.kt:1945 (channel_type private on /channel/device) and :2386 (private_channel_disabled stops the private transport)"
	androidPrivateDelete = "Android data/ChannelSubscriptionRepository.kt:215 (deletes the private route when leaving a gateway)"
	androidBetaRegister  = "Android v1.2.0-beta.9 data/ChannelSubscriptionService.kt:148-161 (/device/register with channel_type and provider_token; reads device_key)"

	// The PushGo gateway.
	pushgoSync       = "PushGo src/api/handlers/core/channels/types.rs:24-44 (ChannelSyncResponse total, success, failed; ChannelSyncResult created, problem)"
	pushgoSyncItems  = "PushGo src/api/handlers/core/channels/sync.rs:84-136 (a bad channel_id or password fails its item)"
	pushgoLegacyPull = "PushGo src/api/handlers/core/pull.rs:28-30 (PullResponse {items}) and ack.rs:20-21 (AckResponse {removed})"
	pushgoSendStatus = "PushGo 1.3 src/api/handlers/send_status.rs (op_id, status, model, entity_id, accepted_at, updated_at, expires_at; found by op_id alone)"
	pushgoLocale     = "PushGo src/api/response.rs:1072-1081 (Content-Language is the problem's locale)"
)

const pw = "correct-horse"

type stack struct {
	t   *testing.T
	api *apitest.Client
	js  jetstream.JetStream
}

// start runs a broker, ingest behind an HTTP server and a projector (for
// /send_status), all in this process.
func start(t *testing.T) *stack {
	t.Helper()
	b := brokertest.Start(t, brokertest.NoEnsure())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := ingest.Start(ctx, b.NC, ingest.Config{Streams: streams.DefaultOptions(), Argon2: registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	p, err := projector.Start(ctx, b.NC, projector.Config{InMemory: true, Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); svc.Close(); _ = p.Close() })
	js, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, api: &apitest.Client{Base: srv.URL, RequireJSON: true}, js: js}
}

// answer is one HTTP answer with its body decoded as generic JSON.
type answer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (s *stack) do(method, path string, body any, hdr http.Header) answer {
	s.t.Helper()
	var r *apitest.Reply
	if method == http.MethodGet {
		r = s.api.Get(s.t, path, hdr)
	} else {
		r = s.api.Send(s.t, method, path, body, hdr)
	}
	a := answer{status: r.Status, header: r.Header, raw: string(r.Body)}
	if err := json.Unmarshal(r.Body, &a.body); err != nil {
		s.t.Fatalf("%s %s: not a JSON object: %s", method, path, r.Body)
	}
	return a
}

func (s *stack) post(path string, body any) answer {
	s.t.Helper()
	return s.do(http.MethodPost, path, body, nil)
}

// data checks a success as both apps read it and returns its data; refs
// name the app code that needs the success.
func (s *stack) data(a answer, refs ...string) map[string]any {
	s.t.Helper()
	if a.status != 200 {
		s.t.Fatalf("%s: want 200, got %d %s", strings.Join(refs, "; "), a.status, a.raw)
	}
	success(s.t, a)
	return a.body["data"].(map[string]any)
}

// success: "success": true and a data object (Apple), and no error or
// error_code member at all: Android's optString would read a null as the
// string "null" and fail the call.
func success(t *testing.T, a answer) {
	t.Helper()
	if a.body["success"] != true {
		t.Fatalf("%s: success is %v: %s", appleStatusResponse, a.body["success"], a.raw)
	}
	if _, ok := a.body["data"].(map[string]any); !ok {
		t.Fatalf("%s: data is not an object: %s", appleDecodeOK, a.raw)
	}
	for _, k := range []string{"error", "error_code"} {
		if _, present := a.body[k]; present {
			t.Fatalf("%s: a success carries %q: %s", androidExecute, k, a.raw)
		}
	}
}

// failure checks an error answer as both apps read it: error and
// error_code strings, and the problem object the Apple app decodes (every
// required member, a category of its enum, the same code and status); refs
// name the app code that acts on the code.
func failure(t *testing.T, a answer, status int, code string, refs ...string) map[string]any {
	t.Helper()
	if a.status != status || a.body["error_code"] != code || a.body["success"] != false {
		t.Fatalf("%s: want %d %s, got %d %s", strings.Join(refs, "; "), status, code, a.status, a.raw)
	}
	if e, ok := a.body["error"].(string); !ok || e == "" {
		t.Fatalf("%s: error is not a non-empty string: %s", androidExecute, a.raw)
	}
	p, ok := a.body["problem"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no problem object: %s", appleStatusResponse, a.raw)
	}
	problem(t, p, status, code)
	return p
}

var appleCategoryValues = map[string]bool{"validation": true, "auth": true, "permission": true, "not_found": true, "conflict": true,
	"feature_disabled": true, "rate_limit": true, "too_busy": true, "network": true, "upstream": true, "local": true, "internal": true}

func problem(t *testing.T, p map[string]any, status int, code string) {
	t.Helper()
	if p["code"] != code {
		t.Fatalf("%s: problem.code %v, want %s", appleResolvedCode, p["code"], code)
	}
	if c, ok := p["category"].(string); !ok || !appleCategoryValues[c] {
		t.Fatalf("%s: problem.category %v", appleCategories, p["category"])
	}
	if isInt(p["status"]) != status {
		t.Fatalf("%s: problem.status %v, want %d", appleProblem, p["status"], status)
	}
	if _, ok := p["retryable"].(bool); !ok {
		t.Fatalf("%s: problem.retryable %v", appleProblem, p["retryable"])
	}
	for _, k := range []string{"title", "detail", "localized_message", "locale", "request_id"} {
		if v, present := p[k]; present {
			if s, ok := v.(string); !ok || s == "" {
				t.Fatalf("%s: problem.%s %v", appleProblem, k, v)
			}
		}
	}
	for _, k := range []string{"title", "localized_message", "locale"} {
		if _, ok := p[k].(string); !ok {
			t.Fatalf("problem.%s missing: %v", k, p)
		}
	}
}

// isInt returns v as an int when it is a JSON integer (Swift Int, Kotlin
// optInt), -1 otherwise.
func isInt(v any) int {
	f, ok := v.(float64)
	if !ok || f != float64(int(f)) {
		return -1
	}
	return int(f)
}

func str(t *testing.T, ref string, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("%s: %q is %v, want a string", ref, key, m[key])
	}
	return s
}

func boolean(t *testing.T, ref string, m map[string]any, key string) bool {
	t.Helper()
	b, ok := m[key].(bool)
	if !ok {
		t.Fatalf("%s: %q is %v, want a bool", ref, key, m[key])
	}
	return b
}

func integer(t *testing.T, ref string, m map[string]any, key string) int {
	t.Helper()
	n := isInt(m[key])
	if n < 0 {
		t.Fatalf("%s: %q is %v, want an integer", ref, key, m[key])
	}
	return n
}

// absent: a key Android reads with optString and tests for emptiness must
// not be there (nor null).
func absent(t *testing.T, ref string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, present := m[k]; present {
			t.Fatalf("%s: %q is present (%v); a null reads as \"null\"", ref, k, v)
		}
	}
}

func (s *stack) register(platform string) string {
	s.t.Helper()
	d := s.data(s.post("/device/register", map[string]any{"platform": platform}))
	return str(s.t, appleRegister, d, "device_key")
}

func (s *stack) channel(name string) string {
	s.t.Helper()
	return str(s.t, "channel_id", s.data(s.post("/channel/create", map[string]any{"channel_name": name, "password": pw})), "channel_id")
}

const (
	apnsToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	fcmToken  = "fcm-token:APA91bH_example-0123456789"
	unknown   = "0123456789abcdef0123456789abcdef"
)

// TestDeviceRoutes: /device/register, /channel/device, its delete and the
// token retirement, as both apps call them.
func TestDeviceRoutes(t *testing.T) {
	s := start(t)

	d := s.data(s.post("/device/register", map[string]any{"platform": "ios"}))
	ios := str(t, appleRegister, d, "device_key")
	str(t, androidRegister, d, "device_key")

	d = s.data(s.post("/channel/device", map[string]any{"device_key": ios, "platform": "ios", "channel_type": "apns", "provider_token": apnsToken}))
	if str(t, appleDeviceChannel, d, "device_key") != ios || str(t, appleDeviceChannel, d, "channel_type") != "apns" {
		t.Fatalf("%s: %v", appleDeviceChannel, d)
	}

	// PushGo 1.2.0's combined register, as the Android 1.2.0 betas send it.
	d = s.data(s.post("/device/register", map[string]any{"platform": "android", "channel_type": "fcm", "provider_token": fcmToken}))
	android := str(t, androidBetaRegister, d, "device_key")
	if d["channel_type"] != "fcm" {
		t.Fatalf("%s: route not bound: %v", androidBetaRegister, d)
	}
	str(t, androidRoute, s.data(s.post("/channel/device", map[string]any{"device_key": android, "platform": "android", "channel_type": "fcm", "provider_token": fcmToken})), "device_key")

	// The private transport is not served here: PushGo's code for a gateway
	// whose private channel is off, which the Android app acts on.
	for _, path := range []string{"/channel/device", "/device/register"} {
		a := s.post(path, map[string]any{"device_key": android, "platform": "android", "channel_type": "private"})
		p := failure(t, a, 503, "private_channel_disabled")
		if p["category"] != "feature_disabled" || p["retryable"] != false || a.header.Get("Retry-After") != "" {
			t.Fatalf("%s: %s", androidPrivate, a.raw)
		}
		if !strings.Contains(a.body["error"].(string), "private channel is disabled") {
			t.Fatalf("%s: error %q", androidPrivate, a.body["error"])
		}
	}

	// Delete answers a data object (the Apple app decodes one); the
	// Android app's delete of its private route removes nothing.
	d = s.data(s.post("/channel/device/delete", map[string]any{"device_key": android, "channel_type": "private"}), androidPrivateDelete, appleEmptyPayload)
	if d["removed"] != false {
		t.Fatalf("%s: %v", androidPrivateDelete, d)
	}
	s.data(s.post("/channel/device/delete", map[string]any{"device_key": ios, "channel_type": "apns"}), appleEmptyPayload)

	// Retire answers a data object; the optional device_key and
	// channel_type are taken.
	s.data(s.post("/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": fcmToken}), appleEmptyPayload)
	s.data(s.post("/channel/device/provider-token/retire", map[string]any{"platform": "ios", "provider_token": apnsToken, "device_key": ios, "channel_type": "apns"}), appleEmptyPayload)

	// An unknown device key: device_key_not_found, the code (and the
	// words) on which both apps register again.
	a := s.post("/channel/device", map[string]any{"device_key": unknown, "platform": "ios", "channel_type": "apns", "provider_token": apnsToken})
	failure(t, a, 404, "device_key_not_found", appleDeviceKeyRetry, androidDeviceKeyGone)
	if !strings.Contains(a.body["error"].(string), "device_key not found") {
		t.Fatalf("%s: error %q", androidDeviceKeyGone, a.body["error"])
	}
}

// TestSubscriptions: subscribe, unsubscribe and sync.
func TestSubscriptions(t *testing.T) {
	s := start(t)
	dev := s.register("android")
	a, b, c := s.channel("a"), s.channel("b"), s.channel("c")

	d := s.data(s.post("/channel/subscribe", map[string]any{"device_key": dev, "channel_id": a, "password": pw}))
	for _, k := range []string{"channel_id", "channel_name"} {
		str(t, appleSubscribe, d, k)
		str(t, androidSubscribe, d, k)
	}
	for _, k := range []string{"created", "subscribed"} {
		boolean(t, appleSubscribe, d, k)
		boolean(t, androidSubscribe, d, k)
	}
	s.data(s.post("/channel/subscribe", map[string]any{"device_key": dev, "channel_id": b, "password": pw}))

	failure(t, s.post("/channel/subscribe", map[string]any{"device_key": unknown, "channel_id": a, "password": pw}), 404, "device_key_not_found",
		appleDeviceKeyRetry, androidDeviceKeyGone)
	// A wrong password is 403 as PushGo (the Android app reports it as an
	// authentication failure before reading the body).
	failure(t, s.post("/channel/subscribe", map[string]any{"device_key": dev, "channel_id": a, "password": "wrong-password"}), 403, "password_mismatch", androidAuth)

	// Sync: one unknown channel, one wrong password, one malformed id, one
	// good channel. The good one is subscribed; nothing is removed.
	d = s.data(s.post("/channel/sync", map[string]any{"device_key": dev, "channels": []map[string]any{
		{"channel_id": a, "password": pw},
		{"channel_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "password": pw},
		{"channel_id": c, "password": "wrong-password"},
		{"channel_id": "not-a-channel", "password": pw},
	}}))
	if integer(t, appleSyncPayload, d, "success") != 1 || integer(t, appleSyncPayload, d, "failed") != 3 || integer(t, pushgoSync, d, "total") != 4 {
		t.Fatalf("%s: %v", androidSync, d)
	}
	items, ok := d["channels"].([]any)
	if !ok || len(items) != 4 {
		t.Fatalf("%s: channels %v", appleSyncPayload, d["channels"])
	}
	ok0 := items[0].(map[string]any)
	if str(t, appleSyncResult, ok0, "channel_id") != a || !boolean(t, appleSyncResult, ok0, "subscribed") || str(t, appleSyncCodes, ok0, "channel_name") != "a" {
		t.Fatalf("%s: %v", appleSyncResult, ok0)
	}
	boolean(t, pushgoSync, ok0, "created")
	absent(t, androidSync, ok0, "error", "error_code", "problem")
	for i, want := range []string{"channel_not_found", "password_mismatch", "invalid_channel_id"} {
		it := items[i+1].(map[string]any)
		str(t, appleSyncResult, it, "channel_id")
		if boolean(t, appleSyncResult, it, "subscribed") || str(t, androidSync, it, "error_code") != want || str(t, androidSync, it, "error") == "" {
			t.Fatalf("%s, %s: item %d %v", androidSync, androidSyncCodes, i+1, it)
		}
		p, ok := it["problem"].(map[string]any)
		if !ok {
			t.Fatalf("%s: item %d has no problem", pushgoSync, i+1)
		}
		status := map[string]int{"channel_not_found": 404, "password_mismatch": 403, "invalid_channel_id": 400}[want]
		problem(t, p, status, want) // resolvedErrorCode reads problem.code first
		absent(t, appleSyncResult, it, "channel_name")
		if want == "invalid_channel_id" && it["channel_id"] != "not-a-channel" {
			t.Fatalf("%s: %v", pushgoSyncItems, it)
		}
	}
	if chs := fmt.Sprint(items[1].(map[string]any)["error_code"], " ", items[2].(map[string]any)["error_code"]); chs != "channel_not_found password_mismatch" {
		t.Fatalf("%s: %s", appleSyncCodes, chs)
	}

	// All good: the unlisted channel b is unsubscribed (PushGo reconciles
	// only when nothing failed).
	d = s.data(s.post("/channel/sync", map[string]any{"device_key": dev, "channels": []map[string]any{{"channel_id": a, "password": pw}}}))
	if integer(t, appleSyncPayload, d, "failed") != 0 || fmt.Sprint(d["unsubscribed"]) != "["+b+"]" {
		t.Fatalf("sync reconcile: %v", d)
	}

	failure(t, s.post("/channel/sync", map[string]any{"device_key": unknown, "channels": []any{}}), 404, "device_key_not_found", androidDeviceKeyGone)
	// PushGo's 2000-channel bound (pushgoSyncLimit) is tested in
	// schemas/devices: a body of 2001 items is over the 32 KiB limit here
	// long before the count matters, as in PushGo.

	d = s.data(s.post("/channel/unsubscribe", map[string]any{"device_key": dev, "channel_id": a}))
	if str(t, appleUnsubscribe, d, "channel_id") != a || !boolean(t, appleUnsubscribe, d, "removed") || !boolean(t, androidUnsubscribe, d, "removed") {
		t.Fatalf("%s: %v", appleUnsubscribe, d)
	}
}

// putInbox stores an inbox item as the pusher does for a payload over
// 4 KiB, and returns its delivery id.
func (s *stack) putInbox(dev string, seq uint64, payload map[string]string) string {
	s.t.Helper()
	id := delivery.ID(seq, dev)
	m := nats.NewMsg(streams.InboxSubject(dev))
	m.Header.Set(streams.HeaderInboxSeq, strconv.FormatUint(seq, 10))
	m.Data, _ = json.Marshal(delivery.InboxItem{DeliveryID: id, Payload: payload})
	if _, err := s.js.PublishMsg(context.Background(), m); err != nil {
		s.t.Fatal(err)
	}
	return id
}

func pulled(t *testing.T, ref string, d map[string]any) []map[string]any {
	t.Helper()
	items, ok := d["items"].([]any)
	if !ok {
		t.Fatalf("%s: items %v", ref, d["items"])
	}
	var out []map[string]any
	for _, it := range items {
		m := it.(map[string]any)
		str(t, ref, m, "delivery_id")
		p, ok := m["payload"].(map[string]any)
		if !ok {
			t.Fatalf("%s: payload %v", ref, m["payload"])
		}
		for k, v := range p {
			if _, ok := v.(string); !ok {
				t.Fatalf("%s: payload[%q] is %v, not a string", ref, k, v)
			}
		}
		out = append(out, m)
	}
	return out
}

// TestInbox: /v2/messages/pull with the delivery_id of a wake-up push, the
// batch ack, and PushGo's legacy pull and ack.
func TestInbox(t *testing.T) {
	s := start(t)
	dev := s.register("ios")
	first := s.putInbox(dev, 7, map[string]string{"title": "Report", "body": strings.Repeat("x", 5000), "message_id": "m1"})
	second := s.putInbox(dev, 9, map[string]string{"title": "Second"})

	// The item a wake-up push named, as the apps ask for it.
	d := s.data(s.post("/v2/messages/pull", map[string]any{"device_key": dev, "delivery_id": second}))
	items := pulled(t, applePullResponse, d)
	if len(items) != 1 || items[0]["delivery_id"] != second || boolean(t, applePullResponse, d, "has_more") {
		t.Fatalf("%s, %s: %v", applePullRequest, appleWatchPull, d)
	}
	// Not there (acked, or another device's): no item and has_more false,
	// so the watch extension stops asking.
	d = s.data(s.post("/v2/messages/pull", map[string]any{"device_key": dev, "delivery_id": "3:" + unknown}))
	if len(pulled(t, applePullResponse, d)) != 0 || d["has_more"] != false {
		t.Fatalf("%s: %v", appleWatchPull, d)
	}
	d = s.data(s.post("/v2/messages/ack", map[string]any{"device_key": dev, "delivery_ids": []string{second}}))
	if integer(t, appleBatchAck, d, "requested_count") != 1 || integer(t, appleWatchBatchAck, d, "removed_count") != 1 {
		t.Fatalf("%s: %v", appleBatchAck, d)
	}

	// The legacy pull returns the remaining item and removes it; the ack
	// after it finds nothing.
	d = s.data(s.post("/messages/pull", map[string]any{"device_key": dev}))
	items = pulled(t, androidPull, d)
	if len(items) != 1 || items[0]["delivery_id"] != first || items[0]["payload"].(map[string]any)["message_id"] != "m1" {
		t.Fatalf("%s, %s: %v", androidPull, pushgoLegacyPull, d)
	}
	d = s.data(s.post("/messages/ack", map[string]any{"device_key": dev, "delivery_id": first}))
	if boolean(t, androidAck, d, "removed") || boolean(t, appleAckResponse, d, "removed") {
		t.Fatalf("%s: %v", androidAck, d)
	}
	third := s.putInbox(dev, 11, map[string]string{"title": "Third"})
	d = s.data(s.post("/messages/pull", map[string]any{"device_key": dev, "delivery_id": third}))
	if items := pulled(t, androidPull, d); len(items) != 1 || items[0]["delivery_id"] != third {
		t.Fatalf("%s: %v", androidPull, d)
	}
	if d := s.data(s.post("/messages/pull", map[string]any{"device_key": dev})); len(pulled(t, androidPull, d)) != 0 {
		t.Fatalf("%s: legacy pull is not destructive: %v", pushgoLegacyPull, d)
	}

	// The v2 route exists: the apps fall back to the legacy one only on a
	// 404 route_not_found, which an unknown route still answers.
	p := failure(t, s.post("/v3/messages/pull", map[string]any{"device_key": dev}), 404, "route_not_found")
	if isInt(p["status"]) != 404 {
		t.Fatalf("%s, %s: %v", appleLegacyFallback, appleWatchRouteCheck, p)
	}
}

// TestSendStatus: PushGo 1.3's fields, found by op_id alone; an op_id two
// channels used is 409 without channel_id.
func TestSendStatus(t *testing.T) {
	s := start(t)
	a, b := s.channel("a"), s.channel("b")
	s.data(s.post("/message", map[string]any{"channel_id": a, "password": pw, "title": "hello", "op_id": "only-a"}))

	var d map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := s.do(http.MethodGet, "/send_status/only-a", nil, nil)
		if r.status == 200 {
			d = s.data(r)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send status: %s", r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, k := range []string{"op_id", "status", "model", "entity_id", "entity_type"} {
		str(t, pushgoSendStatus, d, k)
	}
	for _, k := range []string{"accepted_at", "updated_at", "expires_at"} {
		integer(t, pushgoSendStatus, d, k)
	}
	if d["op_id"] != "only-a" || d["status"] != "accepted" || d["model"] != "message" || d["entity_type"] != "message" {
		t.Fatalf("%s: %v", pushgoSendStatus, d)
	}
	if acc, exp := isInt(d["accepted_at"]), isInt(d["expires_at"]); exp-acc != int(streams.DefaultOptions().Retention.Milliseconds()) {
		t.Fatalf("expires_at %d is not accepted_at %d plus the retention", exp, acc)
	}
	if _, ok := d["deliveries"].(map[string]any); !ok {
		t.Fatalf("deliveries %v", d["deliveries"])
	}

	s.data(s.post("/message", map[string]any{"channel_id": b, "password": pw, "title": "hello", "op_id": "only-a"}))
	failure(t, s.do(http.MethodGet, "/send_status/only-a", nil, nil), 409, "op_id_ambiguous")
	if d := s.data(s.do(http.MethodGet, "/send_status/only-a?channel_id="+b, nil, nil)); d["op_id"] != "only-a" {
		t.Fatalf("with channel_id: %v", d)
	}
	failure(t, s.do(http.MethodGet, "/send_status/never-sent", nil, nil), 404, "send_status_not_found")
}

// TestLocalizedErrors: the error text, the problem's title and
// localized_message follow Accept-Language as the Apple app sends it, and
// Content-Language says which.
func TestLocalizedErrors(t *testing.T) {
	s := start(t)
	body := map[string]any{"device_key": unknown, "channel_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "password": pw}
	for _, c := range []struct{ accept, locale, text string }{
		{"", "en", "device_key: device_key not found; register the device again with /device/register"},
		{"en-US, en", "en", "device_key: device_key not found; register the device again with /device/register"},
		{"zh-Hans-CN, zh-CN, en", "zh-CN", "device_key: device_key 不存在；请通过 /device/register 重新注册设备"},
		{"ko-KR, en", "ko", "device_key: device_key를 찾을 수 없습니다. /device/register로 기기를 다시 등록하세요"},
		{"ja-JP, zh-CN, en", "ja", "device_key: device_key が見つかりません。/device/register でデバイスを登録し直してください"},
		{"fr-FR, en", "en", "device_key: device_key not found; register the device again with /device/register"},
	} {
		var hdr http.Header
		if c.accept != "" {
			hdr = http.Header{"Accept-Language": {c.accept}}
		}
		a := s.do(http.MethodPost, "/channel/subscribe", body, hdr)
		p := failure(t, a, 404, "device_key_not_found")
		if a.body["error"] != c.text || p["locale"] != c.locale || a.header.Get("Content-Language") != c.locale {
			t.Fatalf("%s, %s: Accept-Language %q: %s (Content-Language %q)", appleAcceptLanguage, pushgoLocale, c.accept, a.raw, a.header.Get("Content-Language"))
		}
		// The English detail stays in the problem for logs and support.
		if p["detail"] != "device_key: device_key not found; register the device again with /device/register" {
			t.Fatalf("detail %v", p["detail"])
		}
		if a.header.Get("X-Request-Id") != p["request_id"] {
			t.Fatalf("request_id %v, X-Request-Id %q", p["request_id"], a.header.Get("X-Request-Id"))
		}
	}
	// A sync item's problem is localized too.
	dev := s.register("ios")
	d := s.data(s.do(http.MethodPost, "/channel/sync", map[string]any{"device_key": dev, "channels": []map[string]any{
		{"channel_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "password": pw}}}, http.Header{"Accept-Language": {"ko"}}))
	it := d["channels"].([]any)[0].(map[string]any)
	if it["error"] != "채널을 찾을 수 없습니다" || it["problem"].(map[string]any)["locale"] != "ko" {
		t.Fatalf("sync item in Korean: %v", it)
	}
}
