package leaderread_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/streams"
)

// BenchmarkLastForSubject is the cost of a read of an entity's last
// operation: a direct get beside LastForSubject, on one node (where
// LastForSubject is a direct get) and through a follower's server of a
// 3-node cluster (where it asks the leader).
func BenchmarkLastForSubject(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, js jetstream.JetStream, leader bool) {
		r, err := leaderread.Open(ctx, js, streams.Ops)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.Publish(ctx, subject(1), []byte("{}")); err != nil {
			b.Fatal(err)
		}
		// Until the replica this connection reaches holds it: the loop
		// measures reads that find it.
		for {
			_, err := r.Direct().GetLastMsgForSubject(ctx, subject(1))
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for b.Loop() {
			var err error
			if leader {
				_, err = r.LastForSubject(ctx, subject(1))
			} else {
				_, err = r.Direct().GetLastMsgForSubject(ctx, subject(1))
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("one node", func(b *testing.B) {
		br := brokertest.Start(b)
		b.Run("direct get", func(b *testing.B) { run(b, br.JS, false) })
		b.Run("LastForSubject", func(b *testing.B) { run(b, br.JS, true) })
	})
	b.Run("cluster follower", func(b *testing.B) {
		c := brokertest.StartCluster(b)
		c.LeadOn(b, streams.Ops, 0)
		_, js := c.Conn(b, c.Placement(b, streams.Ops).Followers[0])
		b.Run("direct get", func(b *testing.B) { run(b, js, false) })
		b.Run("LastForSubject", func(b *testing.B) { run(b, js, true) })
	})
}
