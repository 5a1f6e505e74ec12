package deliveryflow_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestChangingThePartitionCountSendsEachOperationOnce: a deployment run
// with 4 partitions, then with PUSHGO_DELIVERY_PARTITIONS set to 2, then
// left to choose (auto), then set to 4 again, pushes every operation
// exactly once to every device, whichever partition it belonged to under
// each count. Before, the shrink left pushgo-deliver-2 and -3 on the
// broker at their old floors, auto took 4 again (the highest consumer
// number + 1), and those two partitions sent their devices again every
// operation appended since the shrink.
//
// Each step's last operation is waited for on every device: a partition
// sends in log order, so by the time a device has it, any operation its
// partition would send again has been sent before it, and the counts
// below are final.
func TestChangingThePartitionCountSendsEachOperationOnce(t *testing.T) {
	e := setup(t, func(c *pusher.Config) { c.Partitions, c.BalanceInterval = 4, time.Hour })
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	// Devices in every partition of 4, so that some move with each change.
	var tokens []string
	per := map[int]int{}
	for i := 0; len(per) < 4 || slices.Min(slices.Collect(maps.Values(per))) < 2; i++ {
		if i == 64 {
			t.Fatalf("64 devices and still a partition of 4 with fewer than 2: %v", per)
		}
		tok := fmt.Sprintf("%s-count-%02d", fcmToken, i)
		per[pusher.PartitionOf(e.device("android", "fcm", tok, ch), 4)]++
		tokens = append(tokens, tok)
	}
	var sent []string
	step := func(name string, n int) {
		t.Helper()
		for i := range n {
			sent = append(sent, e.message(ch, fmt.Sprintf("%s %d", name, i)))
		}
		last := sent[len(sent)-1]
		waitForWithin(t, name+": the last operation on every device", 30*time.Second, func() bool {
			for _, tok := range tokens {
				if timesPushed(e, tok, last) == 0 {
					return false
				}
			}
			return true
		})
	}
	restart := func(partitions int) {
		t.Helper()
		if err := e.push.Close(); err != nil {
			t.Fatal(err)
		}
		e.push = e.start(func(c *pusher.Config) { c.Partitions = partitions })
	}

	step("with 4", 2)
	restart(2)
	if got := partitionConsumerNames(t, e); !slices.Equal(got, []string{"pushgo-deliver-0", "pushgo-deliver-1"}) {
		t.Fatalf("after the change to 2, the partition consumers are %v", got)
	}
	step("with 2", 3)
	restart(0) // auto: the deployment's count, 2
	if got := partitionConsumerNames(t, e); len(got) != 2 {
		t.Fatalf("auto after the change to 2: partition consumers %v", got)
	}
	step("auto", 2)
	restart(4)
	step("with 4 again", 2)

	for _, tok := range tokens {
		for _, op := range sent {
			if n := timesPushed(e, tok, op); n != 1 {
				t.Errorf("device %s: operation %s pushed %d times, want once", tok, op, n)
			}
		}
	}
}

// timesPushed is how many times operation op was pushed to token.
func timesPushed(e *env, token, op string) int {
	n := 0
	for _, r := range e.fcm.Received(token) {
		if r.Data["op_id"] == op {
			n++
		}
	}
	return n
}

// partitionConsumerNames lists the partition consumers of PUSHGO_OPS, in
// order.
func partitionConsumerNames(t *testing.T, e *env) []string {
	t.Helper()
	s, err := e.b.JS.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := s.ListConsumers(context.Background())
	for info := range l.Info() {
		if strings.HasPrefix(info.Name, pusher.PartitionConsumerPrefix) {
			names = append(names, info.Name)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}
