package ingest_test

import (
	"bytes"
	"mime/multipart"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// TestCompatServerChan: /serverchan/{sendkey} and ServerChan's
// {sendkey}.send form, by GET and by POST (form, multipart, JSON).
func TestCompatServerChan(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("serverchan")
	form := contentType("application/x-www-form-urlencoded")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("title", "multi")
	_ = mw.WriteField("desp", "part")
	_ = mw.Close()

	runCompat(t, g, ch, []compatCase{
		// Accepted.
		{name: "GET .send", path: "/serverchan/{key}.send?title=Backup&desp=**done**",
			want: map[string]any{"title": "Backup", "body": "**done**", "severity": "normal"}},
		// ServerChan³'s SDKs post to https://<uid>.push.ft07.com/send/<key>.send.
		{name: "ServerChan³ URL", method: "POST", path: "/serverchan/send/{key}.send", body: `{"title":"Backup","desp":"done","tags":"nas|backup"}`,
			header: contentType("application/json"), want: map[string]any{"title": "Backup", "body": "done", "tags": list("nas", "backup")}},
		// A ';' in a value is text, as ServerChan's server and Bark's take it
		// (Go's url.ParseQuery refused the whole request).
		{name: "semicolon in a value", path: "/serverchan/{key}.send?title=CPU;MEM&desp=a;b", want: map[string]any{"title": "CPU;MEM", "body": "a;b"}},
		{name: "semicolon in a form value", method: "POST", path: "/serverchan/{key}.send", body: "title=CPU;MEM&desp=x",
			header: contentType("application/x-www-form-urlencoded"), want: map[string]any{"title": "CPU;MEM"}},
		{name: "GET without suffix, old text name", path: "/serverchan/{key}?text=Old&desp=x", want: map[string]any{"title": "Old", "body": "x"}},
		{name: "title wins over text", path: "/serverchan/{key}?text=Old&title=New", want: map[string]any{"title": "New"}},
		{name: "no title", path: "/serverchan/{key}?desp=only", want: map[string]any{"title": "Notification", "body": "only"}},
		{name: "PushGo body and url", path: "/serverchan/{key}?title=t&body=b&url=https://a.example",
			want: map[string]any{"body": "b", "url": "https://a.example"}},
		{name: "a tel: url is the url", path: "/serverchan/{key}?title=t&url=tel:%2B15551234567",
			want: map[string]any{"url": "tel:+15551234567"}},
		{name: "POST form with ServerChan's options", method: "POST", path: "/serverchan/{key}.send",
			body: "title=Form&desp=line1%0Aline2&short=s&noip=1&channel=9&openid=o", header: form,
			want: map[string]any{"title": "Form", "body": "line1\nline2"}},
		{name: "POST JSON with ServerChan³ tags", method: "POST", path: "/serverchan/{key}.send",
			body: `{"title":"J","desp":"d","tags":"server|alert"}`, want: map[string]any{"title": "J", "tags": list("server", "alert")}},
		{name: "POST multipart", method: "POST", path: "/serverchan/{key}", body: mp.String(), header: contentType(mw.FormDataContentType()),
			want: map[string]any{"title": "multi", "body": "part"}},
		{name: "POST body wins over query", method: "POST", path: "/serverchan/{key}?title=q", body: "title=b", header: form,
			want: map[string]any{"title": "b"}},
		{name: "escaped key", path: "/serverchan/{ch}%3A" + password + ".send?title=e", want: map[string]any{"title": "e"}},

		// Rejected.
		{name: "a ServerChan send key", path: "/serverchan/SCT12345ABCDE.send?title=x", status: 400, code: "compat_key_invalid"},
		{name: "wrong password", path: "/serverchan/{ch}:wrong-password.send?title=x", status: 403, code: "password_mismatch"},
		{name: "unknown parameter", path: "/serverchan/{key}?title=x&foo=1", status: 400, code: "invalid_query"},
		{name: "unknown form field", method: "POST", path: "/serverchan/{key}", body: "title=x&foo=1", header: form,
			status: 400, code: "invalid_request_body"},
		{name: "thing_id", path: "/serverchan/{key}?title=x&thing_id=a", status: 400, code: "invalid_query"},
		{name: "text body", method: "POST", path: "/serverchan/{key}", body: "hello", header: contentType("text/plain"),
			status: 400, code: "invalid_request_body"},
		{name: "bad metadata", path: "/serverchan/{key}?title=x&metadata=nope", status: 400, code: "metadata_invalid"},
		{name: "PUT", method: "PUT", path: "/serverchan/{key}", status: 405, code: "method_not_allowed"},
	})
}
