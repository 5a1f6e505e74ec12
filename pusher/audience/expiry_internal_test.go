package audience

import (
	"slices"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/devices"
)

// TestRemovedDeviceExpires: a device unsubscribed stays in the audience of
// the operations before its unsubscribe for removedFor after its key is
// deleted, then leaves it; one subscribed again in between stays.
func TestRemovedDeviceExpires(t *testing.T) {
	clock := time.UnixMilli(1713750000000)
	a := &Audience{subs: map[string]map[string]member{}, now: func() time.Time { return clock }}
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	put := func(dev string, s devices.Subscription) {
		b, _ := json.Marshal(s)
		a.Put(devices.SubscriptionKey(ch, dev), b, 0)
	}
	gone, back := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, d := range []string{gone, back} {
		put(d, devices.Subscription{ChannelID: ch, DeviceKey: d, AfterSeq: 1})
		put(d, devices.Subscription{ChannelID: ch, DeviceKey: d, AfterSeq: 1, RemovedAfter: 5})
		a.Delete(devices.SubscriptionKey(ch, d), 0)
	}
	if got := a.At(ch, 5); len(got) != 2 || a.Has(ch) {
		t.Fatalf("audience of seq 5 after the unsubscribes: %v (has subscribers: %v), want both and none now", got, a.Has(ch))
	}
	put(back, devices.Subscription{ChannelID: ch, DeviceKey: back, AfterSeq: 7})
	clock = clock.Add(removedFor)
	a.Delete("other.channel", 0) // any later event expires what is due
	if got := a.At(ch, 5); len(got) != 0 {
		t.Fatalf("audience of seq 5 after removedFor: %v, want none", got)
	}
	if got := a.At(ch, 8); !slices.Equal(got, []string{back}) {
		t.Fatalf("audience of seq 8: %v, want the device subscribed again", got)
	}
}
