package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestAttrsOfManyUpdatesStayBounded: a Thing and an Event whose every
// update adds 24 KiB of new attrs (each request well within the body
// limit) stop growing at fold.MaxAttrsBytes, and their reads say that
// members were left out; before the bound, 150 such updates made a 3.8 MB
// Thing that every later update, read and cached snapshot paid for.
func TestAttrsOfManyUpdatesStayBounded(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"bounded","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":"grows","observed_at":1713750000000}`)
	th := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"title":"grows","status":"running","message":"m","severity":"normal","event_time":1713750000}`)
	ev := data(t, s, m)["event_id"].(string)
	value := strings.Repeat("v", 1000)
	patch := func(i int) string {
		var b strings.Builder
		for j := range 24 {
			fmt.Fprintf(&b, `"k%03d_%02d":%q,`, i, j, value)
		}
		return "{" + strings.TrimSuffix(b.String(), ",") + "}"
	}
	const updates = 2 * fold.MaxAttrsBytes / (24 * 1000)
	for i := range updates {
		s, _, m = post(t, base, "/thing/update", fmt.Sprintf(`{%s,"thing_id":%q,"observed_at":%d,"attrs":%s}`, cred, th, 1713750000001+i, patch(i)))
		data(t, s, m)
		s, _, m = post(t, base, "/event/update", fmt.Sprintf(`{%s,"event_id":%q,"status":"running","message":"m","severity":"normal","event_time":%d,"attrs":%s}`,
			cred, ev, 1713750001+i, patch(i)))
		data(t, s, m)
	}
	for _, read := range []struct{ path, body string }{
		{"/thing/get", `{` + cred + `,"thing_id":"` + th + `"}`},
		{"/event/get", `{` + cred + `,"event_id":"` + ev + `"}`},
	} {
		r := apitest.New(base).Post(t, read.path, read.body)
		var got struct {
			Data struct {
				Attrs   map[string]any `json:"attrs"`
				Version int            `json:"version"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatalf("%s: %v: %.300s", read.path, err, r.Body)
		}
		if len(r.Body) > fold.MaxAttrsBytes+16<<10 {
			t.Errorf("%s: %d bytes after %d updates of 24 KiB of new attrs", read.path, len(r.Body), updates)
		}
		if got.Data.Attrs[ops.TruncatedAttr] != true || got.Data.Attrs["k000_00"] == nil || got.Data.Version != updates+1 {
			t.Errorf("%s: version %d, %d attrs, %s = %v, first member kept: %t", read.path, got.Data.Version, len(got.Data.Attrs),
				ops.TruncatedAttr, got.Data.Attrs[ops.TruncatedAttr], got.Data.Attrs["k000_00"] != nil)
		}
	}
}
