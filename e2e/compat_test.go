package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCompatAnswersAgreeWithTheDocument: the sender compatibility routes'
// answers, a success and a refusal of each tool, with the members its
// own clients read (Bark's code, ServerChan's code, ntfy's message and
// error members), are what the OpenAPI document says: every exchange goes
// through the suite's validating client, which fails the test on a
// mismatch (the document said additionalProperties false for the answers
// to which the tools' members were added, and no test sent one).
func TestCompatAnswersAgreeWithTheDocument(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	const password = "compat-doc-pw"
	ch := createChannel(t, g, "compat-doc", password)
	key, wrong := ch+":"+password, ch+":not-the-password"
	for _, c := range []struct {
		method, path, contentType, body string
		status                          int
		member                          string
	}{
		{http.MethodPost, "/bark/push", "application/json", `{"device_key":"` + key + `","body":"disk"}`, 200, `"code":200`},
		{http.MethodPost, "/bark/push", "application/json", `{"device_key":"` + wrong + `","body":"disk"}`, 403, `"code":403`},
		{http.MethodGet, "/bark/" + key + "/Deploy/Finished", "", "", 200, `"message":"success"`},
		{http.MethodGet, "/serverchan/" + key + ".send?title=Backup&desp=done", "", "", 200, `"code":0`},
		{http.MethodGet, "/serverchan/" + wrong + ".send?title=Backup", "", "", 403, `"code":403`},
		{http.MethodPost, "/ntfy/" + key, "text/plain", "Disk 2 failed", 200, `"event":"message"`},
		{http.MethodPost, "/ntfy/" + wrong, "text/plain", "Disk 2 failed", 403, `"http":403`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r, err := g.Do(ctx, c.method, c.path, body, http.Header{"Content-Type": {c.contentType}})
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		if r.Status != c.status || !strings.Contains(string(r.Body), c.member) {
			t.Errorf("%s %s: %d %s, want %d with %s", c.method, c.path, r.Status, r.Body, c.status, c.member)
		}
	}
}

// TestCloudEventsAnswersAgreeWithTheDocument: /cloudevents' answers, a
// success as an event sink gets it (202, no body), one asked as JSON
// (200, PushGo's success envelope), the token in the query (Knative), and
// a refusal (PushGo's failure envelope, in the language Accept-Language
// asks for), are what the OpenAPI document says, through the suite's
// validating client.
func TestCloudEventsAnswersAgreeWithTheDocument(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	const password = "ce-doc-pw"
	ch := createChannel(t, g, "ce-doc", password)
	token := createIngestToken(t, g, ch, password, "knative")
	binary := func(id string, extra ...string) http.Header {
		h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {id}, "Ce-Source": {"/knative/ping"}, "Ce-Type": {"dev.knative.ping"},
			"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	for _, c := range []struct {
		path   string
		header http.Header
		status int
		body   string
	}{
		{"/cloudevents", binary("1", "Authorization", "Bearer "+token), 202, ""},
		{"/cloudevents", binary("2", "Authorization", "Bearer "+token, "Accept", "application/json"), 200, `"events":[{"id":"2"`},
		{"/cloudevents?token=" + token, binary("3"), 202, ""},
		{"/cloudevents?token=pgo1.AAAAAAAAAAAAAAAAAAAAAAAA." + strings.Repeat("0", 64), binary("4"), 401, `"error_code":"invalid_api_token"`},
		{"/cloudevents?token=pgo1.AAAAAAAAAAAAAAAAAAAAAAAA." + strings.Repeat("0", 64), binary("5", "Accept-Language", "ko"), 401, `"error":"통합 토큰이 없거나 올바르지 않거나 폐기되었습니다"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := g.Do(ctx, http.MethodPost, c.path, []byte(`{"message":"hi"}`), c.header)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != c.status || (c.body == "" && len(r.Body) != 0) || !strings.Contains(string(r.Body), c.body) {
			t.Errorf("POST %s (%s): %d %s, want %d %s", strings.Split(c.path, "?")[0], c.header.Get("Ce-Id"), r.Status, r.Body, c.status, c.body)
		}
	}
}

// TestAlertmanagerAnswersAgreeWithTheDocument: /integrations/alertmanager
// answers as every PushGo route (the success without error members, a
// refusal with PushGo's problem object in the language Accept-Language
// asks for), and that is what the OpenAPI document says, through the
// suite's validating client. Until 6 December the route had an envelope
// of its own: "error": null on a success, and an English refusal without
// problem.
func TestAlertmanagerAnswersAgreeWithTheDocument(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	const password = "am-doc-pw"
	ch := createChannel(t, g, "am-doc", password)
	token := createIngestToken(t, g, ch, password, "alertmanager")
	notification := `{"receiver":"pushgo","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighCPU"},` +
		`"startsAt":"2025-10-09T08:00:00Z","fingerprint":"1a2b3c4d5e6f7a8b"}],"version":"4","groupKey":"{}:{}","truncatedAlerts":0}`
	for _, c := range []struct {
		name, auth, language, body string
		status                     int
		members                    []string
	}{
		{"success", "Api-Token " + token, "", notification, 200, []string{`"success":true`, `"opened":1`}},
		{"no token, in Chinese", "", "zh-CN", notification, 401,
			[]string{`"error":"集成令牌缺失、错误或已吊销"`, `"error_code":"invalid_api_token"`, `"problem":{`, `"locale":"zh-CN"`}},
		{"not a notification, in Japanese", "Api-Token " + token, "ja", `{}`, 400,
			[]string{`"error_code":"invalid_json_data"`, `リクエスト本文がこのルートのスキーマと一致しません`, `"locale":"ja"`}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h := http.Header{"Content-Type": {"application/json"}}
		if c.auth != "" {
			h.Set("Authorization", c.auth)
		}
		if c.language != "" {
			h.Set("Accept-Language", c.language)
		}
		r, err := g.Do(ctx, http.MethodPost, "/integrations/alertmanager", []byte(c.body), h)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Status != c.status || strings.Contains(string(r.Body), `"error":null`) {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
		for _, m := range c.members {
			if !strings.Contains(string(r.Body), m) {
				t.Errorf("%s: %s, want %s in it", c.name, r.Body, m)
			}
		}
	}
}
