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
	// The waits take every place for reads in flight: the others queue
	// in the subscription.
	const waiting, queued = inflightPerPlace, 10
	var minSeqs []uint64
	for range waiting {
		minSeqs = append(minSeqs, 1<<40) // waits its read wait for a fold that will not get there
	}
	answers := queuedReads(t, b, p, append(minSeqs, make([]uint64, queued)...)...)
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
	// The first ones take every place for reads in flight for their read
	// wait: the others queue in the subscription.
	waits := make([]uint64, inflightPerPlace)
	for i := range waits {
		waits[i] = 1 << 40
	}
	const n = inflightPerPlace + 19
	answers := queuedReads(t, b, p, append(waits, make([]uint64, n-len(waits))...)...)
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

// queuedReads sends p the reads of minSeqs (one each) from one inbox,
// waits until the first is under way, and returns where the answers come.
func queuedReads(t *testing.T, b *brokertest.Broker, p *Projector, minSeqs ...uint64) <-chan *nats.Msg {
	t.Helper()
	answers := make(chan *nats.Msg, 4*inflightPerPlace)
	inbox := nats.NewInbox()
	sub, err := b.NC.ChanSubscribe(inbox, answers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	for _, minSeq := range minSeqs {
		req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ThingID: "t1", MinSeq: minSeq})
		if err := b.NC.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(p.inflight) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no read started")
		}
	}
	return answers
}
