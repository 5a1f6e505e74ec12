package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// keys is m's member names, sorted.
func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestIntegrationsAnswerAsPushGoRoutes: the integration routes whose tool
// has no answer shape of its own (Alertmanager and Grafana,
// /cloudevents) answer as POST /message does: a failure carries PushGo's
// problem object and is in the language Accept-Language asks for (error,
// problem.title, problem.localized_message, Content-Language), a success
// has no error or error_code member. Until 6 December they had an
// envelope of their own: a failure without problem, in English whatever
// was asked, and a success with "error": null, "error_code": null.
func TestIntegrationsAnswerAsPushGoRoutes(t *testing.T) {
	it := startIntegrations(t, "envelope")
	zh := map[string]string{"Accept-Language": "zh-CN"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{"Accept-Language": "zh-CN"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}

	// The reference: a PushGo route's refusal and success, in Chinese.
	r := it.api.Send(t, http.MethodPost, "/message", `{"channel_id":"`+it.channel+`","password":"`+it.password+`"}`,
		http.Header{"Content-Type": {"application/json"}, "Accept-Language": {"zh-CN"}})
	ref := r.Object(t)
	refProblem, _ := ref["problem"].(map[string]any)
	if r.Status != 400 || refProblem == nil || refProblem["locale"] != "zh-CN" || r.Header.Get("Content-Language") != "zh-CN" {
		t.Fatalf("POST /message without a title: %d %s", r.Status, r.Body)
	}
	r = it.api.Send(t, http.MethodPost, "/message", `{"channel_id":"`+it.channel+`","password":"`+it.password+`","title":"hi"}`,
		http.Header{"Content-Type": {"application/json"}})
	refOK := keys(r.Object(t))
	if r.Status != 200 || !slices.Equal(refOK, []string{"data", "success"}) {
		t.Fatalf("POST /message: %d %s", r.Status, r.Body)
	}

	bearer := "Bearer " + it.token
	cases := []struct {
		name, method, path string
		headers            map[string]string
		body               string
		status             int
		code, category     string
		// text is the answer's error in Chinese; title its problem's;
		// detail the English detail's start.
		text, title, detail string
	}{
		{"alertmanager, no token", "POST", "/integrations/alertmanager", zh, `{}`, 401, "invalid_api_token", "auth",
			"集成令牌缺失、错误或已吊销", "认证失败", "integration token is missing, wrong or revoked"},
		{"alertmanager, not a notification", "POST", "/integrations/alertmanager", with(map[string]string{"Authorization": bearer}), `{}`,
			400, "invalid_json_data", "validation", "请求体与该接口的结构不符", "请求参数有误", ""},
		{"cloudevents, no token", "POST", "/cloudevents", zh, `{}`, 401, "invalid_api_token", "auth",
			"集成令牌缺失、错误或已吊销", "认证失败", "integration token is missing, wrong or revoked"},
		{"cloudevents, not a cloudevent", "POST", "/cloudevents", with(map[string]string{"Authorization": bearer, "Content-Type": "application/json"}),
			`{"a":1}`, 400, "invalid_json_data", "validation", "请求体与该接口的结构不符", "请求参数有误", ""},
		{"cloudevents handshake without origin", "OPTIONS", "/cloudevents", zh, ``, 400, "invalid_request_body", "validation",
			"WebHook-Request-Origin: 请求体无效", "请求参数有误", "WebHook-Request-Origin: required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, h, b := it.send(c.method, c.path, c.headers, c.body)
			m := decode(t, b)
			if s != c.status || m["success"] != false || m["data"] != nil || m["error_code"] != c.code {
				t.Fatalf("%d %s, want %d %s", s, b, c.status, c.code)
			}
			if !slices.Equal(keys(m), keys(ref)) {
				t.Fatalf("members %v, POST /message's %v: %s", keys(m), keys(ref), b)
			}
			if text, _ := m["error"].(string); !strings.HasSuffix(text, c.text) {
				t.Errorf("error %q, want it in Chinese (ending %q)", text, c.text)
			}
			if h.Get("Content-Language") != "zh-CN" {
				t.Errorf("Content-Language %q, want zh-CN", h.Get("Content-Language"))
			}
			p, _ := m["problem"].(map[string]any)
			if p == nil {
				t.Fatalf("no problem: %s", b)
			}
			detail, _ := p["detail"].(string)
			if p["code"] != c.code || p["category"] != c.category || p["status"] != float64(c.status) || p["title"] != c.title ||
				p["locale"] != "zh-CN" || p["retryable"] != false || !strings.HasPrefix(detail, c.detail) ||
				!strings.HasSuffix(c.text, p["localized_message"].(string)) {
				t.Errorf("problem %v", p)
			}
			if id := h.Get("X-Request-Id"); id == "" || p["request_id"] != id {
				t.Errorf("problem.request_id %v, X-Request-Id %q", p["request_id"], id)
			}
		})
	}

	// Without Accept-Language: English, the detail as the rejection made it.
	s, h, b := it.send("POST", "/integrations/alertmanager", nil, `{}`)
	m := decode(t, b)
	p, _ := m["problem"].(map[string]any)
	if s != 401 || m["error"] != "integration token is missing, wrong or revoked" || p == nil || p["locale"] != "en" ||
		p["title"] != "Authentication failed" || h.Get("Content-Language") != "en" {
		t.Errorf("in English: %d %s", s, b)
	}

	// Successes: {"success": true, "data": {…}} and nothing else, as
	// POST /message's.
	s, _, b = it.send("POST", "/integrations/alertmanager", map[string]string{"Authorization": bearer}, amPayload("firing", "0001-01-01T00:00:00Z", "CPU high"))
	if m := decode(t, b); s != 200 || !slices.Equal(keys(m), refOK) || m["success"] != true {
		t.Errorf("alertmanager success: %d %s", s, b)
	}
	s, _, b = it.send("POST", "/cloudevents", map[string]string{"Authorization": bearer, "Ce-Specversion": "1.0", "Ce-Id": "1",
		"Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json"}, `{"message":"hi"}`)
	if m := decode(t, b); s != 200 || !slices.Equal(keys(m), refOK) || m["success"] != true {
		t.Errorf("cloudevents success (Accept: application/json): %d %s", s, b)
	}
}
