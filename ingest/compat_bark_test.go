package ingest_test

import (
	"bytes"
	"mime/multipart"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// TestCompatBark: Bark's v1 path routes (GET and POST, parameters in the
// path, body and query) and POST /bark/push.
func TestCompatBark(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("bark")
	form := contentType("application/x-www-form-urlencoded")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("title", "From multipart")
	_ = mw.WriteField("body", "fields")
	_ = mw.Close()
	var file bytes.Buffer
	fw := multipart.NewWriter(&file)
	part, _ := fw.CreateFormFile("image", "a.png")
	_, _ = part.Write([]byte("png"))
	_ = fw.Close()

	runCompat(t, g, ch, []compatCase{
		// Accepted.
		{name: "body only", path: "/bark/{key}/Hello%20World",
			want: map[string]any{"title": "Notification", "body": "Hello World", "severity": "normal"}},
		{name: "title and body with Bark's parameters", path: "/bark/{key}/Deploy/Done?level=timeSensitive&sound=minuet&group=ops" +
			"&icon=https://x.example/i.png&url=https://ci.example/1&autoCopy=1&badge=3&isArchive=1&call=1",
			want: map[string]any{"title": "Deploy", "body": "Done", "severity": "high", "url": "https://ci.example/1",
				"metadata": map[string]any{"compat.bark.sound": "minuet", "compat.bark.icon": "https://x.example/i.png", "compat.bark.group": "ops"}}},
		{name: "subtitle", path: "/bark/{key}/Title/Sub/Body", want: map[string]any{"title": "Title", "body": "Sub\nBody"}},
		// Bark opens an app's URL scheme from url: the message's url, as
		// PushGo passes it.
		{name: "an app's url scheme is the url", path: "/bark/{key}/x?url=weixin://",
			want: map[string]any{"url": "weixin://"}},
		{name: "plus is a space, as Bark's server", path: "/bark/{key}/a+b", want: map[string]any{"body": "a b"}},
		{name: "escaped slash", path: "/bark/{key}/a%2Fb%2Bc", want: map[string]any{"body": "a/b+c"}},
		{name: "names match case-insensitively", path: "/bark/{key}/x?LEVEL=passive&Sound=bell",
			want: map[string]any{"severity": "low", "metadata": map[string]any{"compat.bark.sound": "bell"}}},
		{name: "active is normal", path: "/bark/{key}/x?level=active", want: map[string]any{"severity": "normal"}},
		{name: "critical", path: "/bark/{key}/x?level=critical&volume=5", want: map[string]any{"severity": "critical"}},
		{name: "all in the query", path: "/bark/{key}?title=Q&body=B&image=https://x.example/a.png&images=https://x.example/b.png",
			want: map[string]any{"title": "Q", "body": "B", "images": list("https://x.example/a.png", "https://x.example/b.png")}},
		{name: "markdown wins over body", path: "/bark/{key}?body=plain&markdown=**bold**", want: map[string]any{"body": "**bold**"}},
		{name: "path wins over query", path: "/bark/{key}/Path?body=Query", want: map[string]any{"body": "Path"}},
		{name: "POST JSON to the key", method: "POST", path: "/bark/{key}", body: `{"title":"T","body":"B","badge":1,"isArchive":"1","level":"passive"}`,
			want: map[string]any{"title": "T", "body": "B", "severity": "low"}},
		{name: "POST form to the key", method: "POST", path: "/bark/{key}", body: "title=F&body=form+body&group=g", header: form,
			want: map[string]any{"title": "F", "body": "form body", "metadata": map[string]any{"compat.bark.group": "g"}}},
		// Bark's server reads the query, then a form over it, but a JSON
		// body first and the query over it; the path over all
		// (route_push.go, routeDoPush and routeDoPushV2).
		{name: "POST form wins over the query", method: "POST", path: "/bark/{key}?title=Query&sound=bell", body: "title=Body&body=b", header: form,
			want: map[string]any{"title": "Body", "body": "b", "metadata": map[string]any{"compat.bark.sound": "bell"}}},
		{name: "POST query wins over JSON", method: "POST", path: "/bark/{key}?title=Query", body: `{"title":"Body","body":"b"}`,
			header: contentType("application/json"), want: map[string]any{"title": "Query", "body": "b"}},
		{name: "the path wins over the body", method: "POST", path: "/bark/{key}/Path", body: "body=Body", header: form,
			want: map[string]any{"body": "Path"}},
		{name: "POST multipart", method: "POST", path: "/bark/{key}", body: mp.String(), header: contentType(mw.FormDataContentType()),
			want: map[string]any{"title": "From multipart", "body": "fields"}},
		{name: "POST to a path route", method: "POST", path: "/bark/{key}/T/B", want: map[string]any{"title": "T", "body": "B"}},
		{name: "v2 push", method: "POST", path: "/bark/push",
			body: `{"device_key":"{key}","title":"t","body":"b","level":"critical","images":["https://x.example/a.png"],` +
				`"tags":["x"],"metadata":{"k":"v"},"sound":"alarm","badge":1,"category":"c"}`,
			want: map[string]any{"title": "t", "body": "b", "severity": "critical", "images": list("https://x.example/a.png"),
				"tags": list("x"), "metadata": map[string]any{"k": "v", "compat.bark.sound": "alarm"}}},
		{name: "v2 hint replaces a metadata key", method: "POST", path: "/bark/push",
			body: `{"device_key":"{key}","metadata":{"compat.bark.group":"mine","k":1},"group":"bark"}`,
			want: map[string]any{"metadata": map[string]any{"k": float64(1), "compat.bark.group": "bark"}}},
		{name: "v2 push with the query", method: "POST", path: "/bark/push?level=critical&title=Q", body: `{"device_key":"{key}","body":"b","title":"B"}`,
			header: contentType("application/json"), want: map[string]any{"title": "Q", "body": "b", "severity": "critical"}},
		{name: "v2 push with the key in the query", method: "POST", path: "/bark/push?device_key={key}", body: `{"body":"b"}`,
			header: contentType("application/json"), want: map[string]any{"body": "b"}},
		{name: "v2 push as a form", method: "POST", path: "/bark/push", body: "device_key={key}&body=f", header: form,
			want: map[string]any{"body": "f"}},

		// Rejected.
		{name: "key without password", path: "/bark/ynJ5Ft4atkMkWeo2PAvFhF/body", status: 400, code: "compat_key_invalid"},
		{name: "wrong password", path: "/bark/{ch}:wrong-password/x", status: 403, code: "password_mismatch"},
		{name: "bad level", path: "/bark/{key}/x?level=loud", status: 400, code: "invalid_severity"},
		{name: "delete", path: "/bark/{key}/x?delete=1&id=a", status: 400, code: "invalid_query"},
		{name: "Bark encryption", path: "/bark/{key}?ciphertext=abc&iv=123", status: 400, code: "invalid_query"},
		// A trailing slash, as Bark's server takes it (not strict routing).
		{name: "trailing slash, key only", method: "POST", path: "/bark/{key}/", body: `{"body":"slash"}`,
			want: map[string]any{"body": "slash"}},
		{name: "trailing slash, title and body", path: "/bark/{key}/T/B/", want: map[string]any{"title": "T", "body": "B"}},
		{name: "trailing slash, push", method: "POST", path: "/bark/push/", body: `{"device_key":"{key}","body":"p"}`,
			want: map[string]any{"body": "p"}},
		// Bark's documented encrypted push: ciphertext alone, the IV set
		// in the Bark app; it was delivered as an unreadable notification.
		{name: "Bark encryption without iv", method: "POST", path: "/bark/{key}", body: "ciphertext=abc",
			header: form, status: 400, code: "invalid_request_body"},
		{name: "thing_id", path: "/bark/{key}/x?thing_id=nas", status: 400, code: "invalid_query"},
		{name: "unknown parameter", path: "/bark/{key}/x?foo=1", status: 400, code: "invalid_query"},
		{name: "bad url", path: "/bark/{key}/x?url=javascript:alert(1)", status: 400, code: "url_invalid"},
		{name: "bad image", method: "POST", path: "/bark/push", body: `{"device_key":"{key}","images":[""]}`, status: 400, code: "images_format_invalid"},
		{name: "POST text body", method: "POST", path: "/bark/{key}", body: "hello", header: contentType("text/plain"), status: 400, code: "invalid_request_body"},
		{name: "POST a file", method: "POST", path: "/bark/{key}", body: file.String(), header: contentType(fw.FormDataContentType()),
			status: 400, code: "invalid_request_body"},
		{name: "PUT", method: "PUT", path: "/bark/{key}/x", status: 405, code: "method_not_allowed"},
		{name: "v2 without device_key", method: "POST", path: "/bark/push", body: `{"body":"x"}`, status: 400, code: "channel_id_required"},
		{name: "v2 batch", method: "POST", path: "/bark/push", body: `{"device_keys":["{key}"],"body":"x"}`, status: 400, code: "invalid_json_data"},
		{name: "v2 title not a string", method: "POST", path: "/bark/push", body: `{"device_key":"{key}","title":{"a":1}}`,
			status: 400, code: "invalid_json_data"},
		{name: "v2 metadata not an object", method: "POST", path: "/bark/push", body: `{"device_key":"{key}","metadata":["a"]}`,
			status: 400, code: "metadata_invalid"},
		{name: "v2 malformed", method: "POST", path: "/bark/push", body: `{"device_key":`, status: 400, code: "invalid_json_syntax"},
		{name: "v2 duplicate title", method: "POST", path: "/bark/push", body: `{"device_key":"{key}","title":"a","body":"x","title":"b"}`,
			status: 400, code: "invalid_json_data", errorHas: "title: duplicate member"},
		{name: "v2 lone surrogate in metadata", method: "POST", path: "/bark/push", body: `{"device_key":"{key}","body":"x","metadata":{"k":"\udc00"}}`,
			status: 400, code: "invalid_json_data", errorHas: `metadata.k: not valid UTF-8 (lone surrogate escape \udc00)`},
		{name: "v2 GET", path: "/bark/push", status: 400, code: "compat_key_invalid"},
	})
}
