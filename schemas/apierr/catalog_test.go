package apierr

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// TestEveryCodeHasEveryLanguage: the catalog is one table, and each of its
// codes has its message in every locale the gateway answers in, translated
// (not the English text copied), and a category the apps know.
func TestEveryCodeHasEveryLanguage(t *testing.T) {
	if len(Catalog()) < 100 {
		t.Fatalf("catalog has %d codes", len(Catalog()))
	}
	for _, e := range Catalog() {
		if e.Message != e.Texts.En {
			t.Errorf("%s: Message %q is not the English text %q", e.Code, e.Message, e.Texts.En)
		}
		for _, l := range Locales {
			txt := e.Text(l)
			if strings.TrimSpace(txt) == "" {
				t.Errorf("%s has no %s text", e.Code, l)
			}
			if l != English && txt == e.Texts.En {
				t.Errorf("%s: the %s text is the English one", e.Code, l)
			}
		}
		if !slices.Contains(Categories, e.Category) {
			t.Errorf("%s: category %q", e.Code, e.Category)
		}
	}
	for _, c := range Categories {
		for _, l := range Locales {
			if c.Title(l) == "" {
				t.Errorf("category %s has no %s title", c, l)
			}
		}
	}
}

// TestCategories: PushGo's categories for the codes the apps branch on
// (src/api/response.rs, infer_problem_from_code and
// infer_problem_from_status).
func TestCategories(t *testing.T) {
	for code, want := range map[Code]struct {
		cat   Category
		retry bool
	}{
		PasswordMismatch:       {CategoryConflict, false},
		ChannelNotFound:        {CategoryNotFound, false},
		DeviceKeyNotFound:      {CategoryNotFound, false},
		RouteNotFound:          {CategoryNotFound, false},
		AuthenticationFailed:   {CategoryAuth, false},
		InvalidChannelID:       {CategoryValidation, false},
		PrivateChannelDisabled: {CategoryFeatureDisabled, false},
		BrokerUnavailable:      {CategoryTooBusy, true},
		InternalError:          {CategoryInternal, true},
		RateLimited:            {CategoryRateLimit, true},
		EventClosed:            {CategoryConflict, false},
		StoreFull:              {CategoryInternal, false},
		DeviceLimitReached:     {CategoryTooBusy, false},
	} {
		e := Lookup(code)
		if e.Category != want.cat || e.Retryable != want.retry {
			t.Errorf("%s: %s retryable=%v, want %s %v", code, e.Category, e.Retryable, want.cat, want.retry)
		}
	}
}

func TestNegotiateLocale(t *testing.T) {
	for header, want := range map[string]Locale{
		"":                               English,
		"en":                             English,
		"zh":                             Chinese,
		"zh-CN":                          Chinese,
		"zh_cn":                          Chinese,
		"zh-Hans-CN":                     Chinese,
		"zh-SG":                          Chinese,
		"zh-TW":                          English, // Traditional Chinese is not served
		"zh-Hant, ja":                    Japanese,
		"ko-KR":                          Korean,
		"ja-JP, zh-CN, en":               Japanese, // the Apple app's order of preference
		"fr-FR, de;q=0.9":                English,
		"fr, ko;q=0.5, ja;q=0.7":         Japanese,
		"en;q=0.1, zh-CN;q=0.8":          Chinese,
		"ja;q=0, ko":                     Korean,
		"*":                              English,
		"de, *;q=0.5":                    English,
		"ja;q=bogus, ko;q=0.2":           Korean,
		" ZH-cn ; q=0.9 , en ; q = 0.5 ": Chinese,
	} {
		if got := NegotiateLocale(header); got != want {
			t.Errorf("NegotiateLocale(%q) = %s, want %s", header, got, want)
		}
	}
}

// TestEnvelope: a success has no error members; a failure has error,
// error_code and the problem object, localized.
func TestEnvelope(t *testing.T) {
	b, err := EncodeOK(map[string]int{"n": 1})
	if err != nil || string(b) != `{"success":true,"data":{"n":1}}` {
		t.Fatalf("success %s %v", b, err)
	}

	e := Field(InvalidChannelID, "channel_id")
	b, err = EncodeErrorIn(e, Japanese, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]jsontext.Value
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"success":    `false`,
		"data":       `null`,
		"error":      `"channel_id: channel_id は 26 文字の Crockford base32 ID である必要があります"`,
		"error_code": `"invalid_channel_id"`,
		"problem": `{"code":"invalid_channel_id","category":"validation","status":400,"title":"リクエストの内容が正しくありません",` +
			`"detail":"channel_id: channel_id must be a 26-character Crockford base32 id",` +
			`"localized_message":"channel_id は 26 文字の Crockford base32 ID である必要があります","locale":"ja","retryable":false,"request_id":"req-1"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("members %s", b)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}

	// English keeps the detail as the rejection made it; no request id, no
	// request_id member.
	e = Fieldf(InvalidLimit, "limit", "must be 1..%d", 200)
	b, _ = EncodeError(e)
	if !strings.Contains(string(b), `"error":"limit: must be 1..200"`) || strings.Contains(string(b), "request_id") ||
		!strings.Contains(string(b), `"locale":"en"`) || !strings.Contains(string(b), `"localized_message":"limit is out of range"`) {
		t.Fatalf("english %s", b)
	}
	if got := e.Text(Korean); got != "limit: limit이 허용 범위를 벗어났습니다" {
		t.Fatalf("korean text %q", got)
	}
	// No field: the message alone.
	if got := New(ChannelNotFound).Text(Chinese); got != "频道不存在" {
		t.Fatalf("chinese text %q", got)
	}
}

// TestEnvelopeOfInvalidUTF8: a detail quoting invalid UTF-8 a client sent
// (the CloudEvents SDK's errors quote what they could not parse) is
// answered with U+FFFD in its place, in valid JSON, not turned into an
// encoding failure (a 500 for the client's own mistake).
func TestEnvelopeOfInvalidUTF8(t *testing.T) {
	e := Fieldf(InvalidJSONData, "body", "not a CloudEvent: %s", "\xff")
	b, err := EncodeErrorIn(e, English, "req-1")
	if err != nil || !jsontext.Value(b).IsValid() {
		t.Fatalf("%q %v", b, err)
	}
	var got struct {
		Error   string `json:"error"`
		Problem struct {
			Detail string `json:"detail"`
		} `json:"problem"`
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Error != "body: not a CloudEvent: \uFFFD" || got.Problem.Detail != got.Error {
		t.Fatalf("%s (%v)", b, err)
	}
}

func TestWithin(t *testing.T) {
	e := Within("channels.2", Field(InvalidPassword, "password"))
	if e.Field != "channels.2.password" || e.Detail != "channels.2.password: "+Lookup(InvalidPassword).Message {
		t.Fatalf("%+v", e)
	}
	e = Within("channels.2", New(InvalidChannels))
	if e.Field != "channels.2" || !strings.HasPrefix(e.Detail, "channels.2: ") {
		t.Fatalf("%+v", e)
	}
}
