package fcm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/ops"
)

// logBuffer is a log destination safe for the cache's fetch goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withKey rewrites the service account file's private_key to key and
// returns the file, and the key it held.
func withKey(t *testing.T, file, key string) (string, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	old := m["private_key"]
	m["private_key"] = key
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out, old
}

// TestMalformedServiceAccountKeyIsRefusedAtStart: a credentials file whose
// private_key does not parse is refused by New, so the gateway does not
// start; before, Google's library parsed the key only at the first token
// fetch, the gateway started cleanly, and every Android push was retried
// with nothing logged above debug. The error says what is wrong and
// quotes no part of the key.
func TestMalformedServiceAccountKeyIsRefusedAtStart(t *testing.T) {
	good, _ := sendertest.ServiceAccount(t, "from-file")
	_, pemKey := withKey(t, good, "")
	body := pemKey[strings.Index(pemKey, "\n")+1 : strings.Index(pemKey, "-----END")]
	for name, key := range map[string]string{
		"line breaks lost": strings.ReplaceAll(pemKey, "\n", `\n`),
		"truncated":        pemKey[:len(pemKey)/2] + "\n-----END PRIVATE KEY-----\n",
		"not a key":        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
		"absent":           "",
	} {
		file, _ := withKey(t, good, key)
		_, err := fcm.New(fcm.Options{CredentialsFile: file})
		if err == nil || !errors.Is(err, fcm.ErrCredentialsFile) || !strings.Contains(err.Error(), "private_key") {
			t.Errorf("%s: New: %v, want a credentials file error about private_key", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
		for _, line := range strings.Split(body, "\n") {
			if len(line) > 16 && strings.Contains(err.Error(), line[:16]) {
				t.Errorf("%s: the error quotes the key: %v", name, err)
			}
		}
	}
	if _, err := fcm.New(fcm.Options{CredentialsFile: good}); err != nil {
		t.Fatalf("a good key: %v", err)
	}
}

// TestRefusedServiceAccountKeyWarnsAndRetriesAuth: a well-formed key the
// token endpoint refuses (revoked or deleted in the Cloud console) shows
// at the first fetch: the push is retried with reason "auth", not
// "connection", nothing reaches FCM, and the sender's logger gets a
// warning naming the file, the account and Google's refusal, with no key
// or signed assertion in it. Before, the warning went to a discard logger
// and the push said "connection".
func TestRefusedServiceAccountKeyWarnsAndRetriesAuth(t *testing.T) {
	var assertion string
	var mu sync.Mutex
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		assertion = r.PostForm.Get("assertion")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	t.Cleanup(tokens.Close)
	file := sendertest.ServiceAccountAt(t, "from-file", tokens.URL+"/token")
	_, pemKey := withKey(t, file, "")
	var logs logBuffer
	f := sendertest.NewFakeFCM(t)
	s, err := fcm.New(fcm.Options{CredentialsFile: file, Endpoint: f.Endpoint(),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}) // info: what a default gateway logs
	if err != nil {
		t.Fatal(err)
	}
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
	if r.Outcome != sender.Retry || r.Reason != "auth" || len(f.Requests()) != 0 {
		t.Fatalf("Send = %v after %d FCM requests, want retry auth and none", r, len(f.Requests()))
	}
	var warn map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "WARN" {
			warn = m
		}
	}
	if warn == nil {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
	msg, _ := warn["error"].(string)
	t.Logf("warning: %v %q cache=%v error=%q", warn["level"], warn["msg"], warn["cache"], msg)
	for _, want := range []string{file, "pusher@from-file.iam.gserviceaccount.com", "kid1", "refused", "revoked", "invalid_grant", "Invalid JWT Signature."} {
		if !strings.Contains(msg, want) {
			t.Errorf("warning's error lacks %q: %s", want, msg)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	keyLine := strings.Split(pemKey, "\n")[1]
	if assertion == "" || strings.Contains(logs.String(), assertion) || strings.Contains(logs.String(), keyLine) {
		t.Errorf("the log holds the signed assertion or the key:\n%s", logs.String())
	}
}
