package oplog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestAppendedHearsTheLogInOrder: Options.Appended (what one node's fold
// takes instead of a delivery from the broker) is told of every operation
// appended, once, in sequence order, with the very subject and bytes the
// log holds at that sequence, while 32 requests append at once; a retried
// op_id (answered from the log, nothing stored), on this writer or
// another, a refused operation, and the messages published aside to
// another stream between the appends (alert keys' claims) are not told.
func TestAppendedHearsTheLogInOrder(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	type told struct {
		seq           uint64
		subject, data string
	}
	var (
		mu   sync.Mutex
		seen []told
	)
	appended := func(seq uint64, subject string, data []byte) {
		mu.Lock()
		seen = append(seen, told{seq, subject, string(data)})
		mu.Unlock()
	}
	w, err := oplog.New(ctx, b.JS, oplog.Options{Appended: appended})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Another writer (another replica, whose cache knows nothing), for a
	// retry it carries.
	_, js2 := b.Conn(t)
	w2, err := oplog.New(ctx, js2, oplog.Options{Appended: appended})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	channelID := ids.NewChannelID()
	var wg sync.WaitGroup
	var answeredMu sync.Mutex
	answered := map[uint64]bool{}
	for g := range 32 {
		wg.Go(func() {
			for i := range 10 {
				res, aerr := w.Append(ctx, event(t, ops.EventCreate, channelID, fmt.Sprintf("g%02d-%d", g, i), "", "", "created"))
				if aerr != nil {
					t.Errorf("append: %v", aerr)
					return
				}
				answeredMu.Lock()
				answered[res.Seq] = true
				answeredMu.Unlock()
				claim := nats.NewMsg("$KV." + streams.AlertKeysBucket + "." + channelID + ".test." + fmt.Sprintf("g%02d-%d", g, i))
				claim.Data = []byte(`{}`)
				claim.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
				if ack, err := w.PublishAside(ctx, claim); err != nil || ack.Stream == streams.Ops {
					t.Errorf("publish aside: %+v %v", ack, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A retry of an op_id appends nothing; an update of an event that does
	// not exist is refused.
	for _, w := range []*oplog.Writer{w, w2} {
		if res, aerr := w.Append(ctx, event(t, ops.EventCreate, channelID, "g00-0", "", "", "created")); aerr != nil || !res.Replayed {
			t.Fatalf("retry: %+v %v, want a replay", res, aerr)
		}
	}
	if _, aerr := w.Append(ctx, event(t, ops.EventUpdate, channelID, "nowhere", ids.NewRandomID(), "", "x")); aerr == nil {
		t.Fatal("an update of no event was appended")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(answered) {
		t.Fatalf("told of %d appends, %d were answered", len(seen), len(answered))
	}
	s, err := b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range seen {
		if i > 0 && a.seq <= seen[i-1].seq {
			t.Fatalf("told of %d after %d", a.seq, seen[i-1].seq)
		}
		if !answered[a.seq] {
			t.Fatalf("told of %d, which no append was answered", a.seq)
		}
		m, err := s.GetMsg(ctx, a.seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != a.subject || string(m.Data) != a.data {
			t.Fatalf("told of %d as %s %q; the log holds %s %q", a.seq, a.subject, a.data, m.Subject, m.Data)
		}
	}
}
