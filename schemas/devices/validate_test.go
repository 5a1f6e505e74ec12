package devices

import (
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

const (
	dk   = "0123456789abcdef0123456789abcdef"
	cid  = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	cid2 = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
	pw   = "correct-horse"
)

var (
	apnsToken = strings.Repeat("ab", 32) // 64 hex
	fcmToken  = "dXYz0123:APA91bH-abc_def.ghi"
)

// set returns base with members replaced or added: kv is name, raw JSON
// value pairs.
func set(base string, kv ...string) string {
	m := members(base)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = jsontext.Value(kv[i+1])
	}
	return encode(m)
}

// del returns base without the named members.
func del(base string, names ...string) string {
	m := members(base)
	for _, n := range names {
		delete(m, n)
	}
	return encode(m)
}

func members(body string) map[string]jsontext.Value {
	var m map[string]jsontext.Value
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		panic("bad test body " + body + ": " + err.Error())
	}
	return m
}

func encode(m map[string]jsontext.Value) string {
	b, err := json.Marshal(m, json.Deterministic(true))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func q(s string) string {
	b, err := jsontext.AppendQuote(nil, s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rule is one table row: a body for a route, the expected status and code,
// and for accepted bodies a check of the normalised result.
type rule struct {
	name   string
	body   string
	status int
	code   apierr.Code
	check  func(t *testing.T, v any)
}

// run decodes each body strictly, as ingest does, validates it with
// validate, and compares status and error_code.
func run[R any, V any](t *testing.T, rules []rule, validate func(*R) (*V, *apierr.Error)) {
	t.Helper()
	for _, c := range rules {
		t.Run(c.name, func(t *testing.T) {
			var r R
			var v *V
			err := wire.Decode([]byte(c.body), &r)
			if err == nil {
				v, err = validate(&r)
			}
			status, code := 200, apierr.Code("")
			if err != nil {
				status, code = err.Status(), err.Code
			}
			if status != c.status || code != c.code {
				t.Fatalf("got %d %q (%v), want %d %q", status, code, err, c.status, c.code)
			}
			if err == nil && c.check != nil {
				c.check(t, *v)
			}
		})
	}
}

func TestRegisterRules(t *testing.T) {
	base := `{"device_key":"` + dk + `","platform":"ios"}`
	run(t, []rule{
		{"ok", base, 200, "", func(t *testing.T, v any) {
			if r := v.(Register); r.DeviceKey != dk || r.Platform != "ios" {
				t.Errorf("%+v", r)
			}
		}},
		{"key absent asks for a new key", del(base, "device_key"), 200, "", func(t *testing.T, v any) {
			if r := v.(Register); r.DeviceKey != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"key null asks for a new key", set(base, "device_key", `null`), 200, "", nil},
		{"key blank asks for a new key", set(base, "device_key", `"  "`), 200, "", nil},
		{"key upper-case normalised", set(base, "device_key", q(strings.ToUpper(dk))), 200, "", func(t *testing.T, v any) {
			if r := v.(Register); r.DeviceKey != dk {
				t.Errorf("key %q", r.DeviceKey)
			}
		}},
		{"key trimmed", set(base, "device_key", q(" "+dk+" ")), 200, "", nil},
		{"key too short", set(base, "device_key", q(dk[:31])), 400, apierr.InvalidDeviceKey, nil},
		{"key too long", set(base, "device_key", q(dk+"0")), 400, apierr.InvalidDeviceKey, nil},
		{"key not hex", set(base, "device_key", q("g"+dk[1:])), 400, apierr.InvalidDeviceKey, nil},
		{"key with dot", set(base, "device_key", q("."+dk[1:])), 400, apierr.InvalidDeviceKey, nil},
		{"key wrong type", set(base, "device_key", `7`), 400, apierr.InvalidJSONData, nil},
		{"every platform: ipados", set(base, "platform", `"ipados"`), 200, "", nil},
		{"every platform: macos", set(base, "platform", `"macos"`), 200, "", nil},
		{"every platform: watchos", set(base, "platform", `"watchos"`), 200, "", nil},
		{"every platform: android", set(base, "platform", `"android"`), 200, "", nil},
		{"platform case-insensitive", set(base, "platform", `" iOS "`), 200, "", func(t *testing.T, v any) {
			if r := v.(Register); r.Platform != "ios" {
				t.Errorf("platform %q", r.Platform)
			}
		}},
		{"platform absent", del(base, "platform"), 400, apierr.PlatformRequired, nil},
		{"platform blank", set(base, "platform", `""`), 400, apierr.PlatformRequired, nil},
		{"platform unknown", set(base, "platform", `"windows"`), 400, apierr.InvalidPlatform, nil},
		{"unknown member", set(base, "name", `"x"`), 400, apierr.InvalidJSONData, nil},
		// PushGo's channel_type and provider_token (gateway 1.2.0-1.2.1's
		// /device/register, the Android 1.2.0 betas) bind the route too.
		{"with route", set(base, "channel_type", `"APNs"`, "provider_token", q(strings.ToUpper(apnsToken))), 200, "", func(t *testing.T, v any) {
			if r := v.(Register); r.ChannelType != "apns" || r.ProviderToken != apnsToken || r.Platform != "ios" {
				t.Errorf("%+v", r)
			}
		}},
		{"with fcm route", set(base, "platform", `"android"`, "channel_type", `"fcm"`, "provider_token", q(fcmToken)), 200, "", nil},
		{"route without token", set(base, "channel_type", `"apns"`), 400, apierr.ProviderTokenRequired, nil},
		{"token without route", set(base, "provider_token", q(apnsToken)), 400, apierr.ChannelTypeRequired, nil},
		{"blank channel_type counts as absent", set(base, "channel_type", `" "`), 200, "", nil},
		{"route of another platform", set(base, "channel_type", `"fcm"`, "provider_token", q(fcmToken)), 400, apierr.ChannelTypePlatformMismatch, nil},
		{"private transport", set(base, "channel_type", `"private"`), 503, apierr.PrivateChannelDisabled, nil},
		{"wns", set(base, "channel_type", `"wns"`, "provider_token", q(apnsToken)), 400, apierr.InvalidChannelType, nil},
		{"bad token", set(base, "channel_type", `"apns"`, "provider_token", `"zz"`), 400, apierr.InvalidProviderToken, nil},
	}, ValidateRegister)
}

func TestBindRouteRules(t *testing.T) {
	apns := `{"device_key":"` + dk + `","channel_type":"apns","provider_token":"` + apnsToken + `"}`
	fcm := `{"device_key":"` + dk + `","channel_type":"fcm","provider_token":"` + fcmToken + `"}`
	run(t, []rule{
		{"apns ok", apns, 200, "", func(t *testing.T, v any) {
			if r := v.(BindRoute); r.ChannelType != "apns" || r.ProviderToken != apnsToken || r.Platform != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"apns with ios", set(apns, "platform", `"ios"`), 200, "", nil},
		{"apns with macos", set(apns, "platform", `"macos"`), 200, "", nil},
		{"apns with android", set(apns, "platform", `"android"`), 400, apierr.ChannelTypePlatformMismatch, nil},
		{"fcm ok", fcm, 200, "", func(t *testing.T, v any) {
			if r := v.(BindRoute); r.ChannelType != "fcm" || r.ProviderToken != fcmToken {
				t.Errorf("%+v", r)
			}
		}},
		{"fcm with android", set(fcm, "platform", `"android"`), 200, "", nil},
		{"fcm with ios", set(fcm, "platform", `"ios"`), 400, apierr.ChannelTypePlatformMismatch, nil},
		{"platform blank", set(fcm, "platform", `" "`), 400, apierr.InvalidPlatform, nil},
		{"platform unknown", set(fcm, "platform", `"tizen"`), 400, apierr.InvalidPlatform, nil},
		{"device_key absent", del(apns, "device_key"), 400, apierr.DeviceKeyRequired, nil},
		{"device_key bad", set(apns, "device_key", `"nope"`), 400, apierr.InvalidDeviceKey, nil},
		{"channel_type absent", del(apns, "channel_type"), 400, apierr.ChannelTypeRequired, nil},
		{"channel_type unknown", set(apns, "channel_type", `"wns"`), 400, apierr.InvalidChannelType, nil},
		{"channel_type private", set(apns, "channel_type", `"private"`), 503, apierr.PrivateChannelDisabled, nil},
		{"channel_type other", set(apns, "channel_type", `"sms"`), 400, apierr.InvalidChannelType, nil},
		{"channel_type case-insensitive", set(apns, "channel_type", `"APNs"`), 200, "", nil},
		{"token absent", del(apns, "provider_token"), 400, apierr.ProviderTokenRequired, nil},
		{"token blank", set(apns, "provider_token", `"  "`), 400, apierr.ProviderTokenRequired, nil},
		{"apns token upper-case normalised", set(apns, "provider_token", q(strings.ToUpper(apnsToken))), 200, "", func(t *testing.T, v any) {
			if r := v.(BindRoute); r.ProviderToken != apnsToken {
				t.Errorf("token %q", r.ProviderToken)
			}
		}},
		{"apns token 200 hex", set(apns, "provider_token", q(strings.Repeat("a", 200))), 200, "", nil},
		{"apns token 63 hex", set(apns, "provider_token", q(apnsToken[:63])), 400, apierr.InvalidProviderToken, nil},
		{"apns token 201 hex", set(apns, "provider_token", q(strings.Repeat("a", 201))), 400, apierr.InvalidProviderToken, nil},
		{"apns token not hex", set(apns, "provider_token", q("zz"+apnsToken[2:])), 400, apierr.InvalidProviderToken, nil},
		{"apns token with spaces", set(apns, "provider_token", q(apnsToken[:32]+" "+apnsToken[32:])), 400, apierr.InvalidProviderToken, nil},
		{"fcm token 4096", set(fcm, "provider_token", q(strings.Repeat("x", 4096))), 200, "", nil},
		{"fcm token 4097", set(fcm, "provider_token", q(strings.Repeat("x", 4097))), 400, apierr.InvalidProviderToken, nil},
		{"fcm token inner space", set(fcm, "provider_token", `"abc def"`), 400, apierr.InvalidProviderToken, nil},
		{"fcm token control", set(fcm, "provider_token", `"abc\u0001def"`), 400, apierr.InvalidProviderToken, nil},
		{"fcm token non-ASCII", set(fcm, "provider_token", `"abcé"`), 400, apierr.InvalidProviderToken, nil},
		{"unknown member", set(apns, "password", q(pw)), 400, apierr.InvalidJSONData, nil},
	}, ValidateBindRoute)
}

func TestDeleteRouteRules(t *testing.T) {
	base := `{"device_key":"` + dk + `","channel_type":"fcm"}`
	run(t, []rule{
		{"ok", base, 200, "", nil},
		{"device_key absent", del(base, "device_key"), 400, apierr.DeviceKeyRequired, nil},
		{"device_key bad", set(base, "device_key", `"xyz"`), 400, apierr.InvalidDeviceKey, nil},
		{"channel_type absent", del(base, "channel_type"), 400, apierr.ChannelTypeRequired, nil},
		{"channel_type bad", set(base, "channel_type", `"sms"`), 400, apierr.InvalidChannelType, nil},
		{"channel_type private: never stored, nothing to remove", set(base, "channel_type", `"private"`), 200, "", func(t *testing.T, v any) {
			if r := v.(DeleteRoute); r.ChannelType != "private" || r.Served() {
				t.Errorf("%+v", r)
			}
		}},
		{"unknown member", set(base, "provider_token", q(fcmToken)), 400, apierr.InvalidJSONData, nil},
	}, ValidateDeleteRoute)
}

func TestRetireRules(t *testing.T) {
	base := `{"platform":"ios","provider_token":"` + apnsToken + `"}`
	run(t, []rule{
		{"ok", base, 200, "", func(t *testing.T, v any) {
			if r := v.(Retire); r.ChannelType != "apns" || r.ProviderToken != apnsToken {
				t.Errorf("%+v", r)
			}
		}},
		{"android takes fcm tokens", set(base, "platform", `"android"`, "provider_token", q(fcmToken)), 200, "", func(t *testing.T, v any) {
			if r := v.(Retire); r.ChannelType != "fcm" {
				t.Errorf("%+v", r)
			}
		}},
		{"ios token format is apns", set(base, "provider_token", q(fcmToken)), 400, apierr.InvalidProviderToken, nil},
		{"platform absent", del(base, "platform"), 400, apierr.PlatformRequired, nil},
		{"platform unknown", set(base, "platform", `"linux"`), 400, apierr.InvalidPlatform, nil},
		{"token absent", del(base, "provider_token"), 400, apierr.ProviderTokenRequired, nil},
		{"unknown member", set(base, "password", q(pw)), 400, apierr.InvalidJSONData, nil},
		// The optional device_key and channel_type of newer apps.
		{"device_key", set(base, "device_key", q(strings.ToUpper(dk))), 200, "", func(t *testing.T, v any) {
			if r := v.(Retire); r.DeviceKey != dk {
				t.Errorf("%+v", r)
			}
		}},
		{"blank device_key counts as absent", set(base, "device_key", `""`), 200, "", nil},
		{"device_key bad", set(base, "device_key", `"k"`), 400, apierr.InvalidDeviceKey, nil},
		{"channel_type of the platform", set(base, "channel_type", `"apns"`), 200, "", nil},
		{"channel_type of another platform", set(base, "channel_type", `"fcm"`), 400, apierr.ChannelTypePlatformMismatch, nil},
		{"channel_type private", set(base, "channel_type", `"private"`), 503, apierr.PrivateChannelDisabled, nil},
		{"channel_type unknown", set(base, "channel_type", `"sms"`), 400, apierr.InvalidChannelType, nil},
	}, ValidateRetire)
}

func TestSubscribeRules(t *testing.T) {
	byID := `{"device_key":"` + dk + `","password":"` + pw + `","channel_id":"` + strings.ToLower(cid) + `"}`
	byName := `{"device_key":"` + dk + `","password":"` + pw + `","channel_name":" Home "}`
	run(t, []rule{
		{"by id", byID, 200, "", func(t *testing.T, v any) {
			if r := v.(Subscribe); r.ChannelID != cid || r.ChannelName != "" || r.Password != pw {
				t.Errorf("%+v", r)
			}
		}},
		{"by name", byName, 200, "", func(t *testing.T, v any) {
			if r := v.(Subscribe); r.ChannelName != "Home" || r.ChannelID != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"both", set(byID, "channel_name", `"Home"`), 400, apierr.ChannelBindingInvalid, nil},
		{"neither", del(byID, "channel_id"), 400, apierr.ChannelBindingInvalid, nil},
		{"blank id counts as absent", set(byName, "channel_id", `""`), 200, "", nil},
		{"null name counts as absent", set(byID, "channel_name", `null`), 200, "", nil},
		{"both blank", set(byID, "channel_id", `" "`, "channel_name", `""`), 400, apierr.ChannelBindingInvalid, nil},
		{"bad id", set(byID, "channel_id", `"nope"`), 400, apierr.InvalidChannelID, nil},
		{"bad name", set(byName, "channel_name", `"a\nb"`), 400, apierr.InvalidChannelName, nil},
		{"name too long", set(byName, "channel_name", q(strings.Repeat("n", 129))), 400, apierr.InvalidChannelName, nil},
		{"device_key absent", del(byID, "device_key"), 400, apierr.DeviceKeyRequired, nil},
		{"device_key bad", set(byID, "device_key", `"k"`), 400, apierr.InvalidDeviceKey, nil},
		{"password absent", del(byID, "password"), 400, apierr.PasswordRequired, nil},
		{"password short", set(byID, "password", `"short"`), 400, apierr.InvalidPassword, nil},
		{"unknown member", set(byID, "platform", `"ios"`), 400, apierr.InvalidJSONData, nil},
	}, ValidateSubscribe)
}

func TestUnsubscribeRules(t *testing.T) {
	base := `{"device_key":"` + dk + `","channel_id":"` + cid + `"}`
	run(t, []rule{
		{"ok", base, 200, "", nil},
		{"device_key absent", del(base, "device_key"), 400, apierr.DeviceKeyRequired, nil},
		{"device_key bad", set(base, "device_key", `"?"`), 400, apierr.InvalidDeviceKey, nil},
		{"channel_id absent", del(base, "channel_id"), 400, apierr.ChannelIDRequired, nil},
		{"channel_id bad", set(base, "channel_id", `"x"`), 400, apierr.InvalidChannelID, nil},
		{"password not a member", set(base, "password", q(pw)), 400, apierr.InvalidJSONData, nil},
	}, ValidateUnsubscribe)
}

func TestSyncRules(t *testing.T) {
	item := func(id, p string) string { return `{"channel_id":"` + id + `","password":"` + p + `"}` }
	base := `{"device_key":"` + dk + `","channels":[` + item(cid, pw) + `,` + item(cid2, pw) + `]}`
	many := make([]string, MaxSyncChannels+1)
	for i := range many {
		many[i] = item(cid, pw)
	}
	run(t, []rule{
		{"ok", base, 200, "", func(t *testing.T, v any) {
			if s := v.(Sync); len(s.Channels) != 2 || s.Channels[1].ChannelID != cid2 {
				t.Errorf("%+v", s)
			}
		}},
		{"empty list", set(base, "channels", `[]`), 200, "", func(t *testing.T, v any) {
			if s := v.(Sync); len(s.Channels) != 0 {
				t.Errorf("%+v", s)
			}
		}},
		{"channels absent", del(base, "channels"), 400, apierr.InvalidChannels, nil},
		{"channels null", set(base, "channels", `null`), 400, apierr.InvalidChannels, nil},
		{"channels not a list", set(base, "channels", `{}`), 400, apierr.InvalidJSONData, nil},
		{"too many", set(base, "channels", `[`+strings.Join(many, ",")+`]`), 400, apierr.ChannelsLimitExceeded, nil},
		{"null item", set(base, "channels", `[null]`), 400, apierr.InvalidChannels, nil},
		{"duplicate after normalisation", set(base, "channels", `[`+item(cid, pw)+`,`+item(strings.ToLower(cid), pw)+`]`), 400, apierr.InvalidChannels, nil},
		{"item channel_id absent", set(base, "channels", `[{"password":"`+pw+`"}]`), 400, apierr.ChannelIDRequired, nil},
		// A present but malformed channel_id or password fails its item only
		// (as PushGo's sync.rs), so the other items are still synced.
		{"item channel_id bad", set(base, "channels", `[`+item("x", pw)+`,`+item(cid, pw)+`]`), 200, "", func(t *testing.T, v any) {
			s := v.(Sync)
			if len(s.Channels) != 2 || s.Channels[0].Err == nil || s.Channels[0].Err.Code != apierr.InvalidChannelID ||
				s.Channels[0].ChannelID != "x" || s.Channels[1].Err != nil {
				t.Errorf("%+v", s)
			}
		}},
		{"item channel_id blank", set(base, "channels", `[`+item(" ", pw)+`]`), 200, "", func(t *testing.T, v any) {
			if s := v.(Sync); s.Channels[0].Err == nil || s.Channels[0].Err.Code != apierr.ChannelIDRequired {
				t.Errorf("%+v", s)
			}
		}},
		{"item password absent", set(base, "channels", `[{"channel_id":"`+cid+`"}]`), 400, apierr.PasswordRequired, nil},
		{"item password short", set(base, "channels", `[`+item(cid, "short")+`]`), 200, "", func(t *testing.T, v any) {
			if s := v.(Sync); s.Channels[0].Err == nil || s.Channels[0].Err.Code != apierr.InvalidPassword || s.Channels[0].ChannelID != cid {
				t.Errorf("%+v", s)
			}
		}},
		{"item unknown member", set(base, "channels", `[{"channel_id":"`+cid+`","password":"`+pw+`","name":"x"}]`), 400, apierr.InvalidJSONData, nil},
		{"device_key absent", del(base, "device_key"), 400, apierr.DeviceKeyRequired, nil},
		{"device_key bad", set(base, "device_key", `"!"`), 400, apierr.InvalidDeviceKey, nil},
	}, ValidateSync)
}

// TestSyncItemErrorNamesItem: a failed item is named by its position.
func TestSyncItemErrorNamesItem(t *testing.T) {
	body := `{"device_key":"` + dk + `","channels":[{"channel_id":"` + cid + `","password":"` + pw + `"},{"channel_id":"bad","password":"` + pw + `"}]}`
	var r SyncRequest
	if err := wire.Decode([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	v, err := ValidateSync(&r)
	if err != nil {
		t.Fatal(err)
	}
	if e := v.Channels[1].Err; e == nil || e.Field != "channels.1.channel_id" || !strings.HasPrefix(e.Detail, "channels.1.channel_id: ") {
		t.Fatalf("item error %+v", e)
	}
	// A whole-request rejection names the item too.
	body = `{"device_key":"` + dk + `","channels":[{"channel_id":"` + cid + `"}]}`
	if err := wire.Decode([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateSync(&r); err == nil || err.Field != "channels.0.password" {
		t.Fatalf("error %v", err)
	}
}

func TestKeys(t *testing.T) {
	k := SubscriptionKey(cid, dk)
	if ch, d, ok := ParseSubscriptionKey(k); !ok || ch != cid || d != dk {
		t.Fatalf("%q → %q %q %v", k, ch, d, ok)
	}
	if SubscribersFilter(cid) != cid+".*" {
		t.Fatal(SubscribersFilter(cid))
	}
	if d, ch, ok := ParseDeviceChannelKey(DeviceChannelKey(dk, cid)); !ok || ch != cid || d != dk {
		t.Fatal("device channel key")
	}
	for _, bad := range []string{"", "a", "a.", ".b", "a.b.c"} {
		if _, _, ok := ParseSubscriptionKey(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	tk := TokenKey(ChannelTypeAPNs, apnsToken)
	if !strings.HasPrefix(tk, "apns.") || len(tk) != len("apns.")+64 || strings.Contains(tk, apnsToken) {
		t.Fatalf("token key %q", tk)
	}
	if TokenKey(ChannelTypeFCM, apnsToken) == tk {
		t.Fatal("token keys of two channel types collide")
	}
}

func TestCompatible(t *testing.T) {
	for _, c := range []struct {
		ct, p string
		ok    bool
	}{
		{"apns", "ios", true}, {"apns", "ipados", true}, {"apns", "macos", true}, {"apns", "watchos", true},
		{"apns", "android", false}, {"fcm", "android", true}, {"fcm", "ios", false}, {"fcm", "watchos", false},
		{"", "ios", false}, {"apns", "", false},
	} {
		if got := Compatible(c.ct, c.p); got != c.ok {
			t.Errorf("Compatible(%q, %q) = %v", c.ct, c.p, got)
		}
	}
}

func TestDeviceRecordRoundTrip(t *testing.T) {
	d := Device{Key: dk, Platform: "ios", ChannelType: "apns", ProviderToken: apnsToken, CreatedAt: 1, UpdatedAt: 2, Revision: 9}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), dk) || strings.Contains(string(b), `"Revision"`) {
		t.Fatalf("key or revision stored in the value: %s", b)
	}
	var got Device
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	got.Key, got.Revision = d.Key, d.Revision
	if got != d || !got.HasRoute() {
		t.Fatalf("%+v", got)
	}
	got.ClearRoute()
	if got.HasRoute() || got.ProviderToken != "" {
		t.Fatalf("%+v", got)
	}
}
