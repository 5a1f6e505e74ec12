package gateway

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 12, "every bad input a 4xx before anything is appended": invalid
// UTF-8 anywhere in a JSON body and numbers a float64 cannot hold are
// refused on every route that takes JSON, and leave the log as it was.

// jsonRoute is a route that takes a JSON body, with a body template. text
// is a JSON string literal put where the route keeps free text; key and
// val are a member name literal and a value literal put into the route's
// free-form object (attrs, metadata, data, properties, labels,
// custom_details), or ignored when the route has none (nested false).
type jsonRoute struct {
	name, path string
	headers    func(it *integ) map[string]string
	body       func(it *integ, text, key, val string) string
	// nested: key and val go into a free-form object; numbers: val may
	// be a number there.
	nested, numbers bool
}

func pushgoHeaders(*integ) map[string]string {
	return map[string]string{"Content-Type": "application/json"}
}

func tokenHeaders(ct string) func(it *integ) map[string]string {
	return func(it *integ) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + it.token}
		if ct != "" {
			h["Content-Type"] = ct
		}
		return h
	}
}

func (it *integ) cred() string {
	return `"channel_id":"` + it.channel + `","password":"` + it.password + `"`
}

func jsonRoutes() []jsonRoute {
	now := func() string { return fmt.Sprint(time.Now().UnixMilli()) }
	ce := func(text, key, val string) string {
		return `{"specversion":"1.0","id":` + text + `,"source":"/s","type":"t","datacontenttype":"application/json","data":{` + key + `:` + val + `}}`
	}
	return []jsonRoute{
		{"channel/create", "/channel/create", pushgoHeaders, func(it *integ, text, _, _ string) string {
			return `{"channel_name":` + text + `,"password":"correct-horse"}`
		}, false, false},
		{"channel/rename", "/channel/rename", pushgoHeaders, func(it *integ, text, _, _ string) string {
			return `{` + it.cred() + `,"channel_name":` + text + `}`
		}, false, false},
		{"channel/token/create", "/channel/token/create", pushgoHeaders, func(it *integ, text, _, _ string) string {
			return `{` + it.cred() + `,"name":` + text + `,"scopes":["events.ingest"]}`
		}, false, false},
		{"device/register", "/device/register", pushgoHeaders, func(it *integ, text, _, _ string) string {
			return `{"platform":"android","channel_type":"fcm","provider_token":` + text + `}`
		}, false, false},
		{"event/create", "/event/create", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{` + it.cred() + `,"title":` + text + `,"status":"open","message":"m","severity":"normal","event_time":` + now() +
				`,"attrs":{"outer":{` + key + `:` + val + `}}}`
		}, true, true},
		{"thing/create", "/thing/create", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{` + it.cred() + `,"title":` + text + `,"observed_at":` + now() + `,"attrs":{` + key + `:` + val + `}}`
		}, true, true},
		{"message", "/message", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{` + it.cred() + `,"title":` + text + `,"metadata":{` + key + `:` + val + `}}`
		}, true, true},
		{"dynatrace", "/api/v2/events/ingest", tokenHeaders("application/json"), func(it *integ, text, key, val string) string {
			return `{"eventType":"CUSTOM_INFO","title":` + text + `,"properties":{` + key + `:` + val + `}}`
		}, true, true},
		{"event bus", "/v1/event-bus/recv", tokenHeaders(""), func(it *integ, text, key, val string) string {
			return `{"eventBusId":"` + it.channel + `","eventList":[{"id":` + text + `,"source":"/s","type":"t","data":{` + key + `:` + val + `}}]}`
		}, true, true},
		{"cloudevents structured", "/cloudevents", tokenHeaders("application/cloudevents+json"), func(it *integ, text, key, val string) string {
			return ce(text, key, val)
		}, true, true},
		{"cloudevents batch", "/cloudevents", tokenHeaders("application/cloudevents-batch+json"), func(it *integ, text, key, val string) string {
			return `[` + ce(text, key, val) + `]`
		}, true, true},
		{"alertmanager", "/integrations/alertmanager", tokenHeaders("application/json"), func(it *integ, text, key, val string) string {
			return `{"receiver":"r","status":"firing","alerts":[{"status":"firing","labels":{"alertname":` + text + `,` + key + `:` + val +
				`},"annotations":{},"startsAt":"2025-10-09T08:00:00Z","fingerprint":"1a2b3c4d5e6f7a8b"}],"version":"4"}`
		}, true, false},
		{"grafana values", "/integrations/alertmanager", tokenHeaders("application/json"), func(it *integ, text, _, val string) string {
			if strings.HasPrefix(val, `"`) {
				val = "1" // values are numbers: text goes into the labels only
			}
			return `{"receiver":"r","status":"firing","alerts":[{"status":"firing","labels":{"alertname":` + text +
				`},"annotations":{},"startsAt":"2025-10-09T08:00:00Z","fingerprint":"2b3c4d5e6f7a8b9c","values":{"B":` + val + `}}],"version":"1"}`
		}, false, true},
		{"pagerduty", "/v2/enqueue", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{"routing_key":"` + it.token + `","event_action":"trigger","dedup_key":"d1","payload":{"summary":` + text +
				`,"source":"s","severity":"critical","custom_details":{` + key + `:` + val + `}}}`
		}, true, true},
		{"ntfy json", "/ntfy", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{"topic":"` + it.channel + `:` + it.password + `","title":` + text + `,"message":"m"}`
		}, false, false},
		{"bark push", "/bark/push", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{"device_key":"` + it.channel + `:` + it.password + `","title":` + text + `,"body":"b","metadata":{` + key + `:` + val + `}}`
		}, true, true},
		{"serverchan json", "/serverchan/{key}", pushgoHeaders, func(it *integ, text, key, val string) string {
			return `{"title":` + text + `,"desp":"d","metadata":{` + key + `:` + val + `}}`
		}, true, true},
	}
}

// historyLen is the number of operations in the channel's history, read
// with numbers as text: a number beyond a float64 that got in must not stop
// the count.
func (it *integ) historyLen() int {
	it.t.Helper()
	r := it.api.Post(it.t, "/channel/history", map[string]any{"channel_id": it.channel, "password": it.password, "limit": 1000})
	var env struct {
		Data struct{ Items []json.RawMessage }
	}
	if r.Status != 200 || json.Unmarshal(r.Body, &env) != nil {
		it.t.Fatalf("history: %s", r)
	}
	return len(env.Data.Items)
}

// post sends a route's body and returns the status and raw answer.
func (it *integ) postRoute(r jsonRoute, body string) (int, string) {
	it.t.Helper()
	path := strings.ReplaceAll(r.path, "{key}", it.channel+":"+it.password)
	s, _, b := it.send("POST", path, r.headers(it), body)
	return s, string(b)
}

// TestJSONRoutesRefuseInvalidUTF8 sends each JSON route a good body (which
// must be accepted, so the route and its template are sound), then the
// same body with invalid UTF-8 in a string value, in a member name and
// deep in a nested value, as raw bytes and as a lone surrogate escape:
// each is a 400 naming what is wrong and where (README, "Limits and
// abuse": invalid_json_data naming the member, in the tool's own shape on
// an integration's route; never "not valid JSON", invalid_json_syntax being
// for malformed JSON), and the log is unchanged. Until 6 December they were
// invalid_json_syntax "malformed JSON at byte N" (or the tool's "not valid
// JSON"), naming nothing.
func TestJSONRoutesRefuseInvalidUTF8(t *testing.T) {
	it := startIntegrations(t, "utf8")
	bad := map[string]string{
		"raw byte":       "\"a\xffb\"",
		"truncated rune": "\"a\xe2\x82\"",
		"overlong":       "\"\xc0\xaf\"",
		"surrogate":      "\"\xed\xa0\x80\"",
		"lone escape":    `"a\ud800b"`,
		"low escape":     `"\udc00"`,
	}
	for i, r := range jsonRoutes() {
		t.Run(r.name, func(t *testing.T) {
			it.t = t
			ok := fmt.Sprintf(`"ok-%d"`, i)
			if s, b := it.postRoute(r, r.body(it, ok, `"k"`, `"v"`)); s >= 300 {
				t.Fatalf("good body: %d %s", s, b)
			}
			before := it.historyLen()
			for name, v := range bad {
				variants := map[string]string{"text": r.body(it, v, `"k"`, `"v"`)}
				if r.nested {
					variants["member name"] = r.body(it, ok, v, `"v"`)
					variants["nested value"] = r.body(it, ok, `"k"`, v)
				}
				for where, body := range variants {
					s, b := it.postRoute(r, body)
					if s != 400 || !strings.Contains(b, "not valid UTF-8") || strings.Contains(b, "invalid_json_syntax") {
						t.Errorf("%s in %s: %d %s, want 400 saying the text is not valid UTF-8", name, where, s, b)
					}
					if strings.Contains(b, `"error_code"`) && !strings.Contains(b, `"error_code":"invalid_json_data"`) {
						t.Errorf("%s in %s: %s, want invalid_json_data", name, where, b)
					}
					// The member: the value's ("….k"), or for a name the
					// object holding it.
					if where == "nested value" && !namesK.MatchString(b) || where == "member name" && !strings.Contains(b, "member name") {
						t.Errorf("%s in %s: %s names no member", name, where, b)
					}
				}
			}
			if n := it.historyLen(); n != before {
				t.Fatalf("rejected bodies appended %d operations", n-before)
			}
		})
	}
}

// namesK finds the member "k" of a route's free-form object named in an
// answer: "attrs.outer.k", "eventList[0].data.k", 'payload.custom_details.k'.
var namesK = regexp.MustCompile(`\.k\b`)

// TestJSONRoutesRefuseDuplicateMembers: a member name repeated in an
// object is a 400 naming the member on every JSON route (the PushGo and
// compat routes invalid_json_data, as README's "Limits and abuse" says);
// until 6 December ntfy's and Bark's JSON answered invalid_json_syntax
// "request body is not valid JSON".
func TestJSONRoutesRefuseDuplicateMembers(t *testing.T) {
	it := startIntegrations(t, "duplicates")
	for i, r := range jsonRoutes() {
		if !r.nested {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			it.t = t
			before := it.historyLen()
			ok := fmt.Sprintf(`"ok-%d"`, i)
			s, b := it.postRoute(r, r.body(it, ok, `"k":"v","k"`, `"w"`))
			if s != 400 || !namesK.MatchString(b) || strings.Contains(b, "invalid_json_syntax") || strings.Contains(b, "not valid JSON") {
				t.Errorf("%d %s, want 400 naming the member k", s, b)
			}
			if strings.Contains(b, `"error_code"`) && !strings.Contains(b, `"error_code":"invalid_json_data"`) {
				t.Errorf("%s, want invalid_json_data", b)
			}
			if n := it.historyLen(); n != before {
				t.Fatalf("rejected bodies appended %d operations", n-before)
			}
		})
	}
	// ntfy's JSON has no free-form object: its message twice.
	s, b := it.postRoute(jsonRoute{path: "/ntfy/", headers: pushgoHeaders},
		`{"topic":"`+it.channel+`:`+it.password+`","message":"m","message":"n"}`)
	if s != 400 || !strings.Contains(b, `"error":"message: duplicate member","error_code":"invalid_json_data"`) {
		t.Errorf("ntfy: %d %s, want 400 invalid_json_data naming message", s, b)
	}
}

// TestJSONRoutesRefuseHugeNumbers: a number a float64 cannot hold (1e400,
// -1e309, 400 digits) in attrs, metadata or an integration's payload is a
// 400 and appends nothing, where a good number is accepted. (Stored, it
// became Infinity, and every later read of the entity failed with 500.)
func TestJSONRoutesRefuseHugeNumbers(t *testing.T) {
	it := startIntegrations(t, "numbers")
	huge := []string{"1e400", "-1e309", "1" + strings.Repeat("0", 400), "0." + strings.Repeat("9", 10) + "e99999"}
	for i, r := range jsonRoutes() {
		if !r.numbers {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			it.t = t
			ok := fmt.Sprintf(`"ok-%d"`, i)
			if s, b := it.postRoute(r, r.body(it, ok, `"k"`, `1.5e300`)); s >= 300 {
				t.Fatalf("good body: %d %s", s, b)
			}
			before := it.historyLen()
			for _, v := range huge {
				if s, b := it.postRoute(r, r.body(it, ok, `"k"`, v)); s < 400 || s >= 500 {
					t.Errorf("%s: %d %s, want a 4xx", v, s, b)
				}
			}
			if n := it.historyLen(); n != before {
				t.Fatalf("rejected bodies appended %d operations", n-before)
			}
		})
	}
}

// TestCloudEventsInvalidUTF8Headers is issue 12's row: a binary-mode
// CloudEvent with invalid UTF-8 in a ce-* header was appended (its create
// and close) and then answered 500, and so was every retry. Each context
// attribute with an invalid byte is a 400 now, also when sent again, and
// nothing is appended.
func TestCloudEventsInvalidUTF8Headers(t *testing.T) {
	it := startIntegrations(t, "ce-utf8")
	good := map[string]string{"Authorization": "Bearer " + it.token, "Content-Type": "application/json",
		"Ce-Specversion": "1.0", "Ce-Id": "good-1", "Ce-Source": "/s", "Ce-Type": "t"}
	send := func(extra map[string]string) (int, string) {
		h := map[string]string{}
		for k, v := range good {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		s, _, b := it.send("POST", "/cloudevents", h, `{"a":1}`)
		return s, string(b)
	}
	if s, b := send(nil); s != 200 {
		t.Fatalf("good event: %d %s", s, b)
	}
	before := it.historyLen()
	for _, header := range []string{"Ce-Id", "Ce-Type", "Ce-Specversion", "Ce-Source", "Ce-Subject", "Ce-Time", "Ce-Level", "Ce-Region", "Ce-Myext"} {
		for _, v := range []string{"x\xffy", "\xe2\x82", "\xed\xa0\x80"} {
			for try := range 2 {
				s, b := send(map[string]string{header: v})
				if s != 400 || !strings.Contains(b, `"success":false`) {
					t.Errorf("%s %q, try %d: %d %s, want 400", header, v, try, s, b)
				}
			}
		}
	}
	if n := it.historyLen(); n != before {
		t.Fatalf("rejected events appended %d operations", n-before)
	}
}
