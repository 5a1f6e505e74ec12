package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/ingest/apitest"
)

// TestReadAnswersAreWhatTheEncoderWrote: every read answer, now written
// around the stored bytes without a parse (history and list pages, single
// snapshots, send status), is byte for byte what the json package's
// encoder writes for it, which is what the apps got when each hop decoded
// and encoded it again: the answer is its own canonical form, with the
// success envelope's members first, and its length is the Content-Length.
// The writes hold what re-encoding would have changed had it been stored
// as sent: escapes the encoder writes otherwise (\u00e9, \/), HTML
// characters, U+2028, emoji as a surrogate pair, spacing, numbers of every
// shape.
func TestReadAnswersAreWhatTheEncoderWrote(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"bytes","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	const tricky = `"caf\u00e9 <b>&amp;</b> \u2028 \ud83d\ude00 a\/b \"q\" tab\tend"`
	attrs := `{ "text" : ` + tricky + `, "n" : 1E+300, "m" : -0, "f" : 1.50, "big" : 12345678901234567890, "o" : {"x" : "\u003c", "y" : true} }`

	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":`+tricky+`,"observed_at":1713750000000,"attrs":`+attrs+`}`)
	th := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"`+th+`","observed_at":1713750000001,"attrs":{"text":"é2","o":{"y":false,"w":1}}}`)
	data(t, s, m)
	var evs []string
	for range 3 {
		s, _, m = post(t, base, "/event/create", fmt.Sprintf(`{%s,"title":%s,"status":"running","message":%s,"severity":"normal","event_time":1713750000,"thing_id":"%s","attrs":%s}`,
			cred, tricky, tricky, th, attrs))
		evs = append(evs, data(t, s, m)["event_id"].(string))
	}
	s, _, m = post(t, base, "/message", `{`+cred+`,"title":`+tricky+`,"body":`+tricky+`}`)
	opID := data(t, s, m)["op_id"].(string)
	// An empty page is after the log's last operation, the message (one
	// past it is refused: invalid_cursor).
	s, _, m = post(t, base, "/channel/history", `{`+cred+`,"limit":1000}`)
	last := uint64(data(t, s, m)["next_after"].(float64))

	reads := []struct{ path, body string }{
		{"/thing/get", `{` + cred + `,"thing_id":"` + th + `"}`},
		{"/event/get", `{` + cred + `,"event_id":"` + evs[1] + `"}`},
		{"/channel/things", `{` + cred + `}`},
		{"/channel/events", `{` + cred + `,"limit":2}`},
		{"/channel/events", `{` + cred + `,"thing_id":"` + th + `","state":"ONGOING"}`},
		{"/channel/history", `{` + cred + `,"limit":1000}`},
		{"/channel/history", `{` + cred + `,"limit":2,"after":1,"kinds":["event","message"]}`},
		{"/channel/history", fmt.Sprintf(`{%s,"after":%d}`, cred, last)},
	}
	check := func(name string, r *apitest.Reply) {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", name, r.Status, r.Body)
		}
		var v jsontext.Value
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatalf("%s: not JSON: %v: %s", name, err, r.Body)
		}
		canonical, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(r.Body, canonical) || !bytes.HasPrefix(r.Body, []byte(`{"success":true,"data":{`)) {
			t.Errorf("%s: the answer is not what the encoder writes:\n got %s\nwant %s", name, r.Body, canonical)
		}
		if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(r.Body)) || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Length %q Content-Type %q for %d bytes", name, cl, r.Header.Get("Content-Type"), len(r.Body))
		}
	}
	for _, rd := range reads {
		check(rd.path+" "+rd.body, apitest.New(base).Post(t, rd.path, rd.body))
	}
	check("/send_status", apitest.New(base).Get(t, "/send_status/"+opID+"?channel_id="+ch, nil))

	// The tricky text came back as the client meant it.
	r := apitest.New(base).Post(t, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	var got struct {
		Data struct {
			Title string         `json:"title"`
			Attrs map[string]any `json:"attrs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &got, json.RejectUnknownMembers(false)); err != nil {
		t.Fatal(err)
	}
	if want := "café <b>&amp;</b> \u2028 😀 a/b \"q\" tab\tend"; got.Data.Title != want || got.Data.Attrs["text"] != "é2" {
		t.Fatalf("title %q attrs %v, want %q", got.Data.Title, got.Data.Attrs, want)
	}
}
