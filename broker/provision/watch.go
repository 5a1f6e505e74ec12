package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream deleted under running processes, or deleted and created again
// (an operator wiping the broker, a lone broker restarted without its storage),
// leaves each process with positions and views of a log that is gone: the
// bucket views resume after revisions the new bucket starts again below
// and stay stale while saying they are current, the consumers wait for
// sequences that will not come, and ingest's appends fail for good. Only
// a fresh start ensures the streams again and reads them from their
// beginning. So a process watches its streams' identity and ends when one
// changes; its orchestrator starts it again.

// StreamWatch checks that streams are still the streams they were when
// it was made (NewStreamWatch).
type StreamWatch struct {
	js      jetstream.JetStream
	names   []string
	created map[string]time.Time
	missing map[string]int
}

// NewStreamWatch reads the creation time of each stream of names: what
// Run then checks them against. It is to be made before anything reads the
// streams (a process's start), so that a stream created again in between
// is not taken for the one the process started with.
func NewStreamWatch(ctx context.Context, js jetstream.JetStream, names []string) (*StreamWatch, error) {
	w := &StreamWatch{js: js, names: names, created: map[string]time.Time{}, missing: map[string]int{}}
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		w.created[name] = s.CachedInfo().Created
	}
	return w, nil
}

// Run checks every `every` that each stream is still the one
// NewStreamWatch found: it returns an error naming the stream once one has
// been created again (its creation time changed) or has been missing at
// missingChecks checks in a row; nil when ctx ends. A check the broker
// cannot answer (away, electing a leader) is skipped, and starts the count
// of a missing stream again. checked, when not nil, is called after each
// round of checks that found nothing wrong.
func (w *StreamWatch) Run(ctx context.Context, every time.Duration, checked func()) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, name := range w.names {
			if err := w.check(ctx, name); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if checked != nil {
			checked()
		}
	}
}

// missingChecks is how many checks in a row must find a stream missing: a
// broker restarting may say so of a stream for a moment.
const missingChecks = 3

// check is one check of stream name.
func (w *StreamWatch) check(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(cctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if w.missing[name]++; w.missing[name] >= missingChecks {
			return fmt.Errorf("stream %s was deleted under this process: its positions and views name a log that is gone; "+
				"ending, so that a fresh start creates it again and reads it from its beginning", name)
		}
		return nil
	case err != nil:
		w.missing[name] = 0 // the broker away or busy: a missing stream counts again from its next answer
		return nil
	}
	w.missing[name] = 0
	first, at := w.created[name], s.CachedInfo().Created
	if !at.Equal(first) {
		return fmt.Errorf("stream %s was created again under this process (created %s, now %s): its positions and views "+
			"name a log that is gone; ending, so that a fresh start reads it from its beginning",
			name, first.UTC().Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
