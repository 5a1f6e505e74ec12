package pusher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// summaries writes the (operation, partition) summaries in batches: one
// receipt holds every summary finished since the last one (at most
// summaryBatchMax, or summaryBatchBytes), written summaryInterval after
// the first of them. A summary's done is called once the broker has
// stored its batch: only then may the partition's floor pass the
// operation. With nothing pending the writer sleeps: no timer wakes an
// idle gateway fifty times a second.
type summaries struct {
	p *Pusher

	mu      sync.Mutex
	pending []pendingSummary
	size    int
	kick    chan struct{} // a batch is full: write it now
	armed   chan struct{} // the first summary since a batch: write in summaryInterval
}

type pendingSummary struct {
	s    delivery.Summary
	done func()
}

const (
	summaryInterval   = 20 * time.Millisecond
	summaryBatchMax   = 512
	summaryBatchBytes = 256 << 10
)

func newSummaries(p *Pusher) *summaries {
	return &summaries{p: p, kick: make(chan struct{}, 1), armed: make(chan struct{}, 1)}
}

// add queues s; done runs once it is stored.
func (w *summaries) add(s delivery.Summary, done func()) {
	w.mu.Lock()
	first := len(w.pending) == 0
	w.pending = append(w.pending, pendingSummary{s: s, done: done})
	w.size += 256 + 96*len(s.Failures) // about its encoded size
	full := len(w.pending) >= summaryBatchMax || w.size >= summaryBatchBytes
	w.mu.Unlock()
	switch {
	case full:
		signal(w.kick)
	case first:
		signal(w.armed)
	}
}

// signal sends on a channel of capacity one unless a send is pending.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run writes batches until ctx ends.
func (w *summaries) run(ctx context.Context) error {
	t := time.NewTimer(summaryInterval)
	t.Stop() // started by the first summary of a batch
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.armed:
			t.Reset(summaryInterval)
			continue
		case <-t.C:
		case <-w.kick:
		}
		for w.flush(ctx) {
		}
		w.mu.Lock()
		left := len(w.pending) > 0 // a write failed before them: try again
		w.mu.Unlock()
		if left {
			t.Reset(summaryInterval)
		}
	}
}

// flush writes one batch; it reports whether more are waiting.
func (w *summaries) flush(ctx context.Context) bool {
	w.mu.Lock()
	n := 0
	for size := 0; n < len(w.pending) && n < summaryBatchMax && size < summaryBatchBytes; n++ {
		size += 256 + 96*len(w.pending[n].s.Failures)
	}
	batch := w.pending[:n:n]
	w.pending = w.pending[n:]
	w.size = 0
	for _, ps := range w.pending {
		w.size += 256 + 96*len(ps.s.Failures)
	}
	more := len(w.pending) > 0
	w.mu.Unlock()
	if n == 0 {
		return false
	}
	r := delivery.Receipt{Kind: delivery.KindSummary, At: w.p.now().UnixMilli(), BatchID: nuid.Next(), Summaries: make([]delivery.Summary, n)}
	for i, ps := range batch {
		r.Summaries[i] = ps.s
	}
	if err := w.p.storeJSON(ctx, streams.SummariesSubject, r.MsgID(), r, "summaries"); err != nil {
		if ctx.Err() == nil {
			w.p.log.Error("pusher: encode summaries", "err", err)
		}
		return false // never stored: the operations are redone by their partition's next owner
	}
	w.p.metrics.summaries.Add(float64(n))
	for _, ps := range batch {
		ps.done()
	}
	return more
}
