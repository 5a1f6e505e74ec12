package deliveryflow_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// TestReplicasShareThePartitions: three pusher replicas started one after
// the other end up sending two partitions each of six (the broker pins
// every partition to the first one at first; the others get theirs by
// clean hand-overs), no partition has two owners, and a message sent
// after the hand-overs reaches every device exactly once.
func TestReplicasShareThePartitions(t *testing.T) {
	opts := func(c *pusher.Config) {
		c.Partitions, c.BalanceInterval, c.Failover = 6, 200*time.Millisecond, 3*time.Second
	}
	e := setup(t, opts)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	tokens := make([]string, 30)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("%s-share-%02d", fcmToken, i)
		e.device("android", "fcm", tokens[i], ch)
	}
	// The first replica takes every partition as messages flow.
	e.message(ch, "warm-up")
	waitFor(t, "the warm-up on every device", func() bool {
		for _, tok := range tokens {
			if len(e.fcm.Received(tok)) != 1 {
				return false
			}
		}
		return true
	})
	replicas := []*pusher.Pusher{e.push, e.start(), e.start()}
	ctx := context.Background()
	titles := []string{"warm-up"}
	waitForWithin(t, "two partitions each", 60*time.Second, func() bool {
		var all []int
		for _, p := range replicas {
			owned := p.Owned(ctx)
			if len(owned) != 2 {
				// Keep messages flowing: a partition is pinned to a new
				// owner when it has a message to give.
				titles = append(titles, fmt.Sprintf("tick %d", len(titles)))
				e.message(ch, titles[len(titles)-1])
				return false
			}
			all = append(all, owned...)
		}
		slices.Sort(all)
		return slices.Equal(all, []int{0, 1, 2, 3, 4, 5})
	})
	titles = append(titles, "after the hand-overs")
	e.message(ch, titles[len(titles)-1])
	// Every message, those sent while partitions moved and the one after,
	// reaches every device exactly once: a hand-over neither drops nor
	// repeats a delivery.
	waitFor(t, "every message on every device", func() bool {
		for _, tok := range tokens {
			if len(e.fcm.Received(tok)) < len(titles) {
				return false
			}
		}
		return true
	})
	for i, tok := range tokens {
		seen := map[string]int{}
		for _, o := range e.fcm.Received(tok) {
			seen[o.Title]++
		}
		for _, title := range titles {
			if seen[title] != 1 {
				t.Errorf("device %d received %q %d times", i, title, seen[title])
			}
		}
	}
}

// waitForWithin is waitFor with its own bound.
func waitForWithin(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStoppedReplicaHandsItsPartitionOverAtOnce: a replica that stops
// while its partition is idle (its floor acknowledged well before the
// stop, so the client library will not send that acknowledgement again)
// still confirms its floor with the broker and unpins the partition: the
// replica beside it sends the next message at once, not after the
// failover time, and nothing is sent twice.
func TestStoppedReplicaHandsItsPartitionOverAtOnce(t *testing.T) {
	const failover = time.Minute
	e := setup(t, func(c *pusher.Config) {
		c.Partitions, c.Failover, c.BalanceInterval = 1, failover, time.Hour
	})
	ch := e.post("/channel/create", map[string]any{"channel_name": "stop", "password": pw})["channel_id"].(string)
	token := fcmToken + "-stop"
	e.device("android", "fcm", token, ch)
	received := func(title string) int { return timesReceived(e, token, title) }
	e.message(ch, "before")
	waitFor(t, "the first replica's push", func() bool { return received("before") == 1 })
	waitFloor(t, e, lastSeq(t, e))
	e.start()
	if err := e.push.Close(); err != nil {
		t.Fatal(err)
	}
	e.message(ch, "after")
	waitForWithin(t, "the second replica's push, before the failover time", failover/2, func() bool {
		return received("after") == 1
	})
	if n := received("before"); n != 1 {
		t.Errorf("the first message was received %d times", n)
	}
}

// TestStopWithADeviceBehindRepeatsNothing: a replica stops (SIGTERM)
// during a burst while a device of each partition is far behind (its
// provider answers one push at a time, slowly). The deliveries still
// queued go to the retry queue before the replica lets go, so every
// partition's floor passes every operation taken: the next owner redoes
// none, the healthy devices get each push once, and the slow ones get
// every push. Before, the stop's wait ran out with a floor at a slow
// device's first unsent operation, and the next owner pushed every
// operation above it again to every device of the partition; with two
// partitions behind, the first one's wait took the hand-off's time.
func TestStopWithADeviceBehindRepeatsNothing(t *testing.T) {
	for _, parts := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d partitions", parts), func(t *testing.T) { stopWithDevicesBehind(t, parts) })
	}
}

func stopWithDevicesBehind(t *testing.T, parts int) {
	e := setup(t, func(c *pusher.Config) { c.Partitions, c.BalanceInterval = parts, time.Hour })
	ch := e.post("/channel/create", map[string]any{"channel_name": "behind", "password": pw})["channel_id"].(string)
	const n = 30
	answers := make([]sendertest.Answer, n)
	for i := range answers {
		answers[i] = sendertest.Answer{Kind: sendertest.OK, Latency: 300 * time.Millisecond}
	}
	// A slow device and a fast one in every partition.
	var slow, fast []string
	slowIn, fastIn := map[int]bool{}, map[int]bool{}
	for i := 0; len(slowIn) < parts || len(fastIn) < parts; i++ {
		token := fmt.Sprintf("%s-%d", fcmToken, i)
		part := pusher.PartitionOf(e.device("android", "fcm", token, ch), parts)
		if !slowIn[part] {
			slowIn[part] = true
			e.fcm.Script(token, answers...)
			slow = append(slow, token)
			continue
		}
		fastIn[part] = true
		fast = append(fast, token)
	}
	titles := make([]string, n)
	for i := range titles {
		titles[i] = fmt.Sprintf("burst-%02d", i)
		e.message(ch, titles[i])
	}
	waitFor(t, "the healthy devices' pushes", func() bool {
		for _, token := range fast {
			if len(e.fcm.Received(token)) < n {
				return false
			}
		}
		return true
	})
	for _, token := range slow {
		if got := len(e.fcm.Received(token)); got >= n/2 {
			t.Fatalf("a slow device has %d of %d pushes before the stop: it is not behind, the test proves nothing", got, n)
		}
	}
	e.start() // the replica that takes the partitions over
	if err := e.push.Close(); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, "every push at the slow devices", time.Minute, func() bool {
		for _, token := range slow {
			for _, title := range titles {
				if timesReceived(e, token, title) == 0 {
					return false
				}
			}
		}
		return true
	})
	// The next owner has passed every operation in every partition: any
	// redo is done.
	last := lastSeq(t, e)
	waitForWithin(t, fmt.Sprintf("every partition's floor at %d", last), 30*time.Second, func() bool {
		for i := range parts {
			if partitionFloorOf(t, e, i) < last {
				return false
			}
		}
		return true
	})
	for _, token := range append(slow, fast...) {
		for _, title := range titles {
			if got := timesReceived(e, token, title); got != 1 {
				t.Errorf("%s received %q %d times, want once", token, title, got)
			}
		}
	}
}
