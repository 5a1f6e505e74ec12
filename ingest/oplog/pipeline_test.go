package oplog_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestPipelinedAppendsKeepEachEntitysOrder: two writers (two ingest
// replicas on one broker) append, from 64 goroutines at once, 640 updates
// to one event and 640 more spread over 16 others, all in flight together
// on the writers' shared publish pipelines. Every append answers with the
// sequence of its own operation (the message stored there carries its
// op_id: no acknowledgement is handed to another request), every entity's
// operations are in the log exactly once each, none lost, in the order
// each goroutine was answered, and a retry of any of them is replayed
// with its sequence.
func TestPipelinedAppendsKeepEachEntitysOrder(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	newWriter := func() *oplog.Writer {
		_, js := b.Conn(t)
		w, err := oplog.New(ctx, js, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		t.Cleanup(w.Close)
		return w
	}
	writers := []*oplog.Writer{newWriter(), newWriter()}
	channelID := ids.NewChannelID()
	const others = 16
	events := make([]string, others+1) // events[0] is the hot one
	for i := range events {
		res, aerr := writers[0].Append(ctx, event(t, ops.EventCreate, channelID, fmt.Sprint("create-", i), "", "", "created"))
		if aerr != nil {
			t.Fatal(aerr)
		}
		events[i] = res.EntityID
	}

	const goroutines, each = 64, 20
	type answer struct {
		opID, eventID string
		seq           uint64
	}
	answers := make([][]answer, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			w := writers[g%2]
			for i := range each {
				ev := events[0]
				if i%2 == 1 {
					ev = events[1+(g+i)%others]
				}
				opID := fmt.Sprintf("g%02d-%02d", g, i)
				res, aerr := w.Append(ctx, event(t, ops.EventUpdate, channelID, opID, ev, "", opID))
				if aerr != nil {
					t.Errorf("%s: %v", opID, aerr)
					return
				}
				if res.Replayed || res.Unchanged || res.Seq == 0 {
					t.Errorf("%s: %+v", opID, res)
					return
				}
				answers[g] = append(answers[g], answer{opID: opID, eventID: ev, seq: res.Seq})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	_, js := b.Conn(t)
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	// Each answer's sequence holds its own operation.
	bySeq := map[uint64]string{}
	for _, as := range answers {
		for _, a := range as {
			m, err := s.GetMsg(ctx, a.seq)
			if err != nil {
				t.Fatalf("%s at %d: %v", a.opID, a.seq, err)
			}
			if got := m.Header.Get(streams.HeaderOpID); got != a.opID || m.Subject != streams.OpSubject(channelID, ops.KindEvent, a.eventID) {
				t.Fatalf("%s was answered sequence %d, which holds %s on %s", a.opID, a.seq, got, m.Subject)
			}
			if other, dup := bySeq[a.seq]; dup {
				t.Fatalf("%s and %s were both answered sequence %d", a.opID, other, a.seq)
			}
			bySeq[a.seq] = a.opID
		}
	}
	// Each entity's operations in the log: exactly the answered ones, in
	// increasing sequence, each goroutine's in the order it was answered.
	for _, ev := range events {
		var logged []uint64
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.OpSubject(channelID, ops.KindEvent, ev)}})
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(streams.OpSubject(channelID, ops.KindEvent, ev)))
		if err != nil {
			t.Fatal(err)
		}
		n := info.State.Subjects[streams.OpSubject(channelID, ops.KindEvent, ev)]
		batch, err := c.Fetch(int(n))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			logged = append(logged, md.Sequence.Stream)
		}
		if len(logged) != int(n) {
			t.Fatalf("event %s: fetched %d of %d operations", ev, len(logged), n)
		}
		want := 1 // its create
		for _, as := range answers {
			for _, a := range as {
				if a.eventID == ev {
					want++
				}
			}
		}
		if len(logged) != want {
			t.Fatalf("event %s: %d operations in the log, want %d (1 create and the answered updates)", ev, len(logged), want)
		}
		for i, seq := range logged[1:] {
			if _, ok := bySeq[seq]; !ok {
				t.Fatalf("event %s: operation %d at %d was answered to nobody", ev, i+1, seq)
			}
		}
	}
	for g, as := range answers {
		for i := 1; i < len(as); i++ {
			if as[i].seq <= as[i-1].seq {
				t.Fatalf("goroutine %d: %s at %d after %s at %d", g, as[i].opID, as[i].seq, as[i-1].opID, as[i-1].seq)
			}
		}
		// A retry is answered as the first time, through either writer.
		a := as[len(as)/2]
		res, aerr := writers[(g+1)%2].Append(ctx, event(t, ops.EventUpdate, channelID, a.opID, a.eventID, "", a.opID))
		if aerr != nil || !res.Replayed || res.Seq != a.seq {
			t.Fatalf("retry of %s: %+v, %v; want replayed at %d", a.opID, res, aerr, a.seq)
		}
	}
}

// TestAppendAfterCloseAppendsNothing: a writer closed (its acks no longer
// received) answers 503 and publishes nothing: the same create then
// appended through another writer on the same connection (so after it on
// the wire) is new, not the replay of an earlier one.
func TestAppendAfterCloseAppendsNothing(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	_, js := b.Conn(t)
	closed, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	channelID := ids.NewChannelID()
	if _, aerr := closed.Append(ctx, event(t, ops.EventCreate, channelID, "late-create", "", "", "hello")); aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("append after close: %v, want %s", aerr, apierr.AppendUnavailable)
	}
	open, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	res, aerr := open.Append(ctx, event(t, ops.EventCreate, channelID, "late-create", "", "", "hello"))
	if aerr != nil || res.Replayed {
		t.Fatalf("the same create through an open writer: %+v, %v; want appended, not replayed", res, aerr)
	}
}

// TestOperationOverTheBrokersLimit: an operation the broker cannot hold
// (built past validation's bound, which keeps every validated one far
// below) is refused as operation_too_large, not retryable, and nothing is
// stored; the writer goes on appending. Before, it was a 503 "retry with
// the same op_id" that every retry met again.
func TestOperationOverTheBrokersLimit(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	nc, js := b.Conn(t)
	w, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	t.Cleanup(w.Close)
	channelID := ids.NewChannelID()
	big := event(t, ops.EventCreate, channelID, "big", "", "", "small")
	big.Payload.(*ops.EventPayload).Message = strings.Repeat("x", int(nc.MaxPayload())+1)
	stream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	before, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, aerr := w.Append(ctx, big)
	if aerr == nil || aerr.Code != apierr.OperationTooLarge || aerr.Status() != 413 || apierr.Lookup(aerr.Code).Retryable {
		t.Fatalf("append over the limit: %v, want %s (413, not retryable)", aerr, apierr.OperationTooLarge)
	}
	if _, aerr := w.Append(ctx, event(t, ops.EventCreate, channelID, "next", "", "", "small")); aerr != nil {
		t.Fatalf("the next append: %v", aerr)
	}
	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != before.State.Msgs+1 {
		t.Fatalf("stream holds %d messages, want %d (only the next one)", after.State.Msgs, before.State.Msgs+1)
	}
}
