package ops

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestMessageQuery covers GET /message (spec §6): the same fields as query
// parameters, lists comma-separated, metadata as a JSON string.
func TestMessageQuery(t *testing.T) {
	base := "channel_id=" + cid + "&password=" + pw + "&title=Disk+failed"
	cases := []struct {
		name, query string
		status      int
		code        apierr.Code
		checks      []check
	}{
		{"minimal", base, 200, "", []check{channelIs(cid), member("title", `"Disk failed"`), member("severity", `"normal"`)}},
		{"all fields", base + "&op_id=m-1&thing_id=nas-1&body=**two**&severity=high&occurred_at=1713749000&url=https%3A%2F%2Fnas.local&images=https://x/a.png,https://x/b.png&tags=nas,+disk,nas&metadata=%7B%22slot%22%3A%222%22%7D&ciphertext=abc&ttl=1713753600",
			200, "", []check{opIDIs("m-1"), thingIs("nas-1"), member("body", `"**two**"`), member("severity", `"high"`),
				member("occurred_at", `1713749000000`), member("url", `"https://nas.local"`), member("images", `["https://x/a.png","https://x/b.png"]`),
				member("tags", `["nas","disk"]`), member("metadata", `{"slot":"2"}`), member("ciphertext", `"abc"`), member("ttl", `1713753600000`)}},
		{"empty list is absent", base + "&tags=&images=", 200, "", []check{absent("tags"), absent("images")}},
		{"empty metadata is absent", base + "&metadata=", 200, "", []check{absent("metadata")}},
		{"empty url ignored", base + "&url=", 200, "", []check{absent("url")}},
		{"unknown parameter", base + "&foo=1", 400, apierr.InvalidQuery, nil},
		{"case variant parameter", base + "&Title=x", 400, apierr.InvalidQuery, nil},
		{"repeated parameter", base + "&title=again", 400, apierr.InvalidQuery, nil},
		{"repeated list parameter", base + "&tags=a&tags=b", 400, apierr.InvalidQuery, nil},
		{"invalid utf-8", base + "&body=%FF", 400, apierr.InvalidQuery, nil},
		{"bad timestamp", base + "&occurred_at=yesterday", 400, apierr.InvalidTimestamp, nil},
		// Blank optional parameters are absent, and a list's empty items
		// are dropped, as PushGo reads its GET query
		// (deserialize_empty_as_none, split_query_list).
		{"empty timestamp is absent", base + "&ttl=", 200, "", []check{absent("ttl")}},
		{"blank optional parameters are absent", base + "&severity=&op_id=&thing_id=&body=+&ciphertext=&occurred_at=", 200, "",
			[]check{member("severity", `"normal"`), absent("body"), absent("ciphertext")}},
		{"bad metadata json", base + "&metadata=%7Bslot%7D", 400, apierr.MetadataInvalid, nil},
		{"duplicate metadata key", base + "&metadata=" + url.QueryEscape(`{"a":"1","a":"2"}`), 400, apierr.MetadataInvalid, nil},
		{"metadata not object", base + "&metadata=5", 400, apierr.MetadataInvalid, nil},
		{"metadata rule applies", base + "&metadata=" + url.QueryEscape(`{"a":null}`), 400, apierr.MetadataValueScalarRequired, nil},
		{"empty list items dropped", base + "&tags=a,,b,", 200, "", []check{member("tags", `["a","b"]`)}},
		{"title required", "channel_id=" + cid + "&password=" + pw, 400, apierr.TitleRequired, nil},
		{"channel_id required", "password=" + pw + "&title=x", 400, apierr.ChannelIDRequired, nil},
		{"thing_id needs occurred_at", base + "&thing_id=nas-1", 400, apierr.OccurredAtRequired, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, perr := url.ParseQuery(c.query)
			if perr != nil {
				t.Fatal(perr)
			}
			var v *Validated
			r, err := MessageRequestFromQuery(q)
			if err == nil {
				v, err = ValidateMessage(r, testNow)
			}
			status, code := 200, apierr.Code("")
			if err != nil {
				status, code = err.Status(), err.Code
			}
			if status != c.status || code != c.code {
				t.Fatalf("got %d %q (%v), want %d %q", status, code, err, c.status, c.code)
			}
			for _, ch := range c.checks {
				ch(t, v)
			}
		})
	}
}

// TestMessageQueryMatchesPost: GET and POST of the same message are the
// same operation, so a retry may switch between them.
func TestMessageQueryMatchesPost(t *testing.T) {
	q, _ := url.ParseQuery("channel_id=" + strings.ToLower(cid) + "&password=" + pw + "&title=Disk&tags=a,b&metadata=" + url.QueryEscape(`{ "k" : 1 }`) + "&occurred_at=1713749000")
	r, err := MessageRequestFromQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	get, err := ValidateMessage(r, testNow)
	if err != nil {
		t.Fatal(err)
	}
	post, err := validateBody(MessageCreate, []byte(`{"channel_id":"`+cid+`","password":"other-password","title":"Disk","tags":["a","b"],"metadata":{"k":1},"occurred_at":1713749000000}`), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if get.BodyHash != post.BodyHash {
		t.Errorf("GET and POST hashes differ")
	}
}

// TestQueryParamsMatchMessageFields keeps the GET parameter list in step
// with MessageRequest's JSON members.
func TestQueryParamsMatchMessageFields(t *testing.T) {
	rt := reflect.TypeFor[MessageRequest]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		value := "x"
		switch name {
		case "occurred_at", "ttl":
			value = "1713750000"
		case "metadata":
			value = "{}"
		}
		if _, err := MessageRequestFromQuery(url.Values{name: {value}}); err != nil {
			t.Errorf("field %s is not a query parameter: %v", name, err)
		}
	}
}
