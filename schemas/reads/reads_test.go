package reads

import (
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

func TestValidate(t *testing.T) {
	const cred = `"channel_id":"01arz3ndektsv4rrffq69g5fav","password":"correct-horse"`
	cases := []struct {
		route Route
		body  string
		code  apierr.Code
	}{
		{ThingGet, `{` + cred + `,"thing_id":"nas"}`, ""},
		{ThingGet, `{` + cred + `}`, apierr.ThingIDRequired},
		{ThingGet, `{` + cred + `,"thing_id":"a b"}`, apierr.InvalidThingID},
		{ThingGet, `{` + cred + `,"thing_id":"nas","limit":5}`, apierr.InvalidJSONData},
		{EventGet, `{` + cred + `,"event_id":"e1"}`, ""},
		{EventGet, `{` + cred + `,"thing_id":"e1"}`, apierr.EventIDRequired},
		{ChannelThings, `{` + cred + `,"state":"archived","limit":1000,"cursor":"t1"}`, ""},
		{ChannelThings, `{` + cred + `,"state":"ONGOING"}`, apierr.InvalidState},
		{ChannelThings, `{` + cred + `,"limit":0}`, apierr.InvalidLimit},
		{ChannelThings, `{` + cred + `,"limit":1001}`, apierr.InvalidLimit},
		{ChannelThings, `{` + cred + `,"cursor":"../x"}`, apierr.InvalidCursor},
		{ChannelThings, `{` + cred + `,"thing_id":"x"}`, apierr.InvalidJSONData},
		{ChannelEvents, `{` + cred + `,"state":"CLOSED","thing_id":"nas"}`, ""},
		{ChannelEvents, `{` + cred + `,"state":"closed"}`, apierr.InvalidState},
		{ChannelHistory, `{` + cred + `,"after":10,"limit":1000,"kinds":["event","message"]}`, ""},
		{ChannelHistory, `{` + cred + `,"kinds":["alarm"]}`, apierr.InvalidKinds},
		{ChannelHistory, `{` + cred + `,"after":-1}`, apierr.InvalidJSONData},
		// after+1 is the page's lower bound: the largest uint64 wrapped it
		// to 0 and answered the channel's first page.
		{ChannelHistory, `{` + cred + `,"after":9223372036854775807}`, ""},
		{ChannelHistory, `{` + cred + `,"after":9223372036854775808}`, apierr.InvalidCursor},
		{ChannelHistory, `{` + cred + `,"after":18446744073709551615}`, apierr.InvalidCursor},
		{ChannelHistory, `{` + cred + `,"state":"active"}`, apierr.InvalidJSONData},
		{ChannelHistory, `{"password":"correct-horse"}`, apierr.ChannelIDRequired},
		{ChannelHistory, `{"channel_id":"01arz3ndektsv4rrffq69g5fav","password":"short"}`, apierr.InvalidPassword},
	}
	for _, c := range cases {
		var b Body
		err := wire.Decode([]byte(c.body), &b)
		if err == nil {
			var req *Request
			req, _, err = Validate(c.route, &b)
			if err == nil && req.ChannelID != "01ARZ3NDEKTSV4RRFFQ69G5FAV" {
				t.Errorf("%s %s: channel id not canonical: %q", c.route, c.body, req.ChannelID)
			}
		}
		got := apierr.Code("")
		if err != nil {
			got = err.Code
		}
		if got != c.code {
			t.Errorf("%s %s: got %q, want %q", c.route, c.body, got, c.code)
		}
	}
}

// TestBudgets: the page budget leaves ReplyHeadroom below max_payload (and
// never goes under MinPageBytes), a chunk leaves ChunkHeadroom, and chunk
// headers read back what was written, nothing else.
func TestBudgets(t *testing.T) {
	if got := PageBytes(1 << 20); got != 1<<20-ReplyHeadroom {
		t.Fatalf("PageBytes(1 MiB) = %d", got)
	}
	if got := PageBytes(1024); got != MinPageBytes {
		t.Fatalf("PageBytes(1 KiB) = %d", got)
	}
	if got := ChunkBytes(1 << 20); got != 1<<20-ChunkHeadroom {
		t.Fatalf("ChunkBytes(1 MiB) = %d", got)
	}
	if got := ChunkBytes(10); got != 1 {
		t.Fatalf("ChunkBytes(10) = %d", got)
	}
	for _, c := range [][2]int{{1, 1}, {1, 2}, {2, 2}, {17, 40}} {
		i, n, ok := ParseChunk(FormatChunk(c[0], c[1]))
		if !ok || i != c[0] || n != c[1] {
			t.Fatalf("chunk %v read back as %d/%d %v", c, i, n, ok)
		}
	}
	for _, v := range []string{"", "1", "0/1", "2/1", "-1/3", "a/b", "1/2/3", " 1/2"} {
		if _, _, ok := ParseChunk(v); ok {
			t.Fatalf("ParseChunk(%q) accepted", v)
		}
	}
}
