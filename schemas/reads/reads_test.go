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
