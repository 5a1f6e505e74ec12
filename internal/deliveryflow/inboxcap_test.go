package deliveryflow_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestInboxKeepsTheLatestPushes: with PUSHGO_INBOX_PER_DEVICE at 2, a
// device that acks nothing pulls its two latest pushes, oldest first, with
// has_more false: the oldest went when the third was stored, and the
// pull says nothing of it (the app replays it from the channel's history).
func TestInboxKeepsTheLatestPushes(t *testing.T) {
	e := setup(t)
	o := streams.DefaultOptions()
	o.InboxPerDevice = 2
	// What a gateway started with the setting does to the inbox stream.
	if err := provision.Ensure(context.Background(), e.b.JS, o); err != nil {
		t.Fatal(err)
	}
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	iphone := e.device("ios", "apns", apnsToken, ch)
	titles := []string{"Disk 2 failed", "Disk 2 rebuilt", "Backup done"}
	for _, title := range titles {
		e.message(ch, title)
	}
	waitFor(t, "the pushes", func() bool { return len(e.apns.Received(apnsToken)) == len(titles) })
	pulled := func() []string {
		page := e.post("/v2/messages/pull", map[string]any{"device_key": iphone})
		if page["has_more"] != false {
			t.Fatalf("pull: %v", page)
		}
		var got []string
		for _, it := range page["items"].([]any) {
			got = append(got, it.(map[string]any)["payload"].(map[string]any)["title"].(string))
		}
		return got
	}
	// Each item is stored beside its push: wait for the last one's.
	waitFor(t, "the last push's item", func() bool { return slices.Contains(pulled(), titles[2]) })
	if got := pulled(); !slices.Equal(got, titles[1:]) {
		t.Fatalf("the inbox holds %q, want the latest two pushes %q", got, titles[1:])
	}
}
