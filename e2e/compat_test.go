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
