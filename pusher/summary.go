package pusher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
	size int // summarySize(s), counted once
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
	ps := pendingSummary{s: s, done: done, size: summarySize(s)}
	w.pending = append(w.pending, ps)
	w.size += ps.size
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
	n, size := 0, 0
	for ; n < len(w.pending) && n < summaryBatchMax && size < summaryBatchBytes; n++ {
		size += w.pending[n].size
	}
	batch := w.pending[:n:n]
	w.pending = w.pending[n:]
	w.size -= size
	more := len(w.pending) > 0
	w.mu.Unlock()
	if n == 0 {
		return false
	}
	if err := w.store(ctx, batch); err != nil {
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

// store writes batch as one receipt; one the broker refuses for its size
// (summarySize is an estimate) is written in halves, rather than retried
// for ever while every partition's floor waits for it.
func (w *summaries) store(ctx context.Context, batch []pendingSummary) error {
	r := delivery.Receipt{Kind: delivery.KindSummary, At: w.p.now().UnixMilli(), BatchID: nuid.Next(), Summaries: make([]delivery.Summary, len(batch))}
	for i, ps := range batch {
		r.Summaries[i] = ps.s
	}
	err := w.p.storeJSON(ctx, streams.SummariesSubject, r.MsgID(), r, "summaries")
	if !errors.Is(err, nats.ErrMaxPayload) || len(batch) < 2 {
		return err
	}
	w.p.log.Warn("pusher: a summaries batch over the broker's message size is written in halves", "summaries", len(batch))
	if err := w.store(ctx, batch[:len(batch)/2]); err != nil {
		return err
	}
	return w.store(ctx, batch[len(batch)/2:])
}

// summarySize bounds s's encoded size from above, for the batch bound:
// the fixed members, and each failure's and retried device's strings.
func summarySize(s delivery.Summary) int {
	n := 320 + len(s.ChannelID) + len(s.OpID) + len(s.EntityID) + len(s.EntityType)
	for _, f := range s.Failures {
		// JSON escapes can make a reason up to six times its length.
		n += 96 + len(f.DeviceKey) + len(f.Provider) + len(f.Outcome) + 6*len(f.Reason)
	}
	for _, k := range s.Retried {
		n += 4 + len(k)
	}
	return n
}
