package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream deleted under running processes, or deleted and created again
// (an operator wiping the broker, a broker restarted without its storage),
// leaves each process with positions and views of a log that is gone: the
// bucket views resume after revisions the new bucket starts again below
// and stay stale while saying they are current, the consumers wait for
// sequences that will not come, and ingest's appends fail for good. Only
// a fresh start ensures the streams again and reads them from their
// beginning. So a process watches its streams' identity and ends when one
// changes; its orchestrator starts it again.

// WatchStreams checks every `every` that each stream of names still is the
// stream it was at the first check: it returns an error naming the stream
// once one has been created again (its creation time changed) or has been
// missing at missingChecks checks in a row; nil when ctx ends. A check the broker
// cannot answer (away, electing a leader) is skipped. checked, when not
// nil, is called after each round of checks that found nothing wrong.
func WatchStreams(ctx context.Context, js jetstream.JetStream, names []string, every time.Duration, checked func()) error {
	created := map[string]time.Time{}
	missing := map[string]int{}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, name := range names {
			if err := checkStream(ctx, js, name, created, missing); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if checked != nil {
			checked()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// missingChecks is how many checks in a row must find a stream missing: a
// broker restarting may say so of a stream for a moment.
const missingChecks = 3

// checkStream is one check of stream name against what the first found.
func checkStream(ctx context.Context, js jetstream.JetStream, name string, created map[string]time.Time, missing map[string]int) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(cctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if missing[name]++; missing[name] >= missingChecks {
			return fmt.Errorf("stream %s was deleted under this process: its positions and views name a log that is gone; "+
				"ending, so that a fresh start creates it again and reads it from its beginning", name)
		}
		return nil
	case err != nil:
		return nil // the broker away or busy: the next check
	}
	missing[name] = 0
	at := s.CachedInfo().Created
	first, seen := created[name]
	if !seen {
		created[name] = at
		return nil
	}
	if !at.Equal(first) {
		return fmt.Errorf("stream %s was created again under this process (created %s, now %s): its positions and views "+
			"name a log that is gone; ending, so that a fresh start reads it from its beginning",
			name, first.UTC().Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
