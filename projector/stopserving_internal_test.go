package projector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/reads"
)

// TestNoReadServedAfterServingStops: reads still delivered once serving
// stopped (a rebuild about to swap the store, or a close) are answered
// read_unavailable at once, and none is served after stopServing returns.
// They waited for the stopped fold one after the other, the drain gave up
// after 5 s, and the rest ran afterwards on a store being discarded.
func TestNoReadServedAfterServingStops(t *testing.T) {
	b := brokertest.Start(t)
	p, err := Start(context.Background(), b.NC, Config{InMemory: true, Serve: true, ReadWait: 2 * time.Second, MaxConcurrentReads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	answers := make(chan *nats.Msg, 64)
	inbox := nats.NewInbox()
	sub, err := b.NC.ChanSubscribe(inbox, answers)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const waiting, queued = 3, 10
	ask := func(minSeq uint64) {
		t.Helper()
		req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ThingID: "t1", MinSeq: minSeq})
		if err := b.NC.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
			t.Fatal(err)
		}
	}
	for range waiting {
		ask(1 << 40) // waits its read wait for a fold that will not get there
	}
	for range queued {
		ask(0)
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first read is under way (the others queue behind it).
	for deadline := time.Now().Add(10 * time.Second); len(p.reads) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no read started")
		}
	}
	p.stopServing()
	served := p.ServedReads()
	unavailable := 0
	for range waiting + queued {
		select {
		case m := <-answers:
			if strings.Contains(string(m.Data), `"read_unavailable"`) {
				unavailable++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d answers missing", waiting+queued)
		}
	}
	if got := p.ServedReads(); got != served {
		t.Errorf("%d reads served after stopServing returned", got-served)
	}
	if unavailable == 0 {
		t.Errorf("no read answered read_unavailable once serving stopped")
	}
}

// TestCloseServesTheReadsDelivered: a clean close answers the reads
// delivered before it from the store, as a replica recreated by its
// orchestrator should; it refused them all (read_unavailable, a 503 to
// their clients).
func TestCloseServesTheReadsDelivered(t *testing.T) {
	b := brokertest.Start(t)
	p, err := Start(context.Background(), b.NC, Config{InMemory: true, Serve: true, MaxConcurrentReads: 1, ReadWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan *nats.Msg, 64)
	inbox := nats.NewInbox()
	sub, err := b.NC.ChanSubscribe(inbox, answers)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const n = 20
	ask := func(minSeq uint64) {
		t.Helper()
		req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ThingID: "t1", MinSeq: minSeq})
		if err := b.NC.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
			t.Fatal(err)
		}
	}
	ask(1 << 40) // holds the one read place for its read wait: the others queue
	for range n - 1 {
		ask(0)
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(p.reads) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no read started")
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case m := <-answers:
			if strings.Contains(string(m.Data), `"read_unavailable"`) {
				t.Fatalf("a read delivered before the close answered %s", m.Data)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("answers missing")
		}
	}
}
