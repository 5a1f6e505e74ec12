package livestream

import (
	"context"
	"fmt"
	"time"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/streams"
)

// A resume (Last-Event-ID) is checked against the log's bounds. Past its
// last operation it names a log that is not this one any more (a broker
// restored from a copy, a stream recreated, the last second of a sync=1s
// log lost to a power cut, whose sequences the broker then gives again):
// the stream would skip, for good and in silence, every new operation up
// to it. Before its first, operations of the log after it have aged out
// (the retention), maybe some of the channel's, which the stream cannot
// give: it says so first. Whether the channel had any there cannot be
// known once they are gone (a channel quiet for longer than the retention
// gets the gap too); a client that takes the gap's first_seq as its
// position hears of it once.

// boundsFresh is how long the log's bounds, read once, serve the resumes
// after it: a reconnecting crowd asks the broker once a second, not once a
// stream.
const boundsFresh = time.Second

// logBounds are PUSHGO_OPS's first and last sequences, as read at at (or
// the read's failure).
type logBounds struct {
	first, last uint64
	at          time.Time
	err         error
}

// bounds returns the log's bounds, read at most boundsFresh ago unless
// fresh.
func (f *Follower) bounds(ctx context.Context, fresh bool) (logBounds, error) {
	f.boundsMu.Lock()
	defer f.boundsMu.Unlock()
	if !fresh && !f.logBounds.at.IsZero() && time.Since(f.logBounds.at) < boundsFresh {
		return f.logBounds, f.logBounds.err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := f.js.Stream(rctx, streams.Ops)
	if err != nil {
		// Remembered as long as bounds are: the resumes queued behind
		// this read go on unchecked, not each after a read of its own.
		f.logBounds = logBounds{at: time.Now(), err: fmt.Errorf("livestream: stream %s: %w", streams.Ops, err)}
		return logBounds{}, f.logBounds.err
	}
	s := st.CachedInfo().State
	f.logBounds = logBounds{first: s.FirstSeq, last: s.LastSeq, at: time.Now()}
	return f.logBounds, nil
}

// checkResume checks a resume after after (> 0) against the log's bounds:
// beyond its end it is refused (invalid_cursor); before its first retained
// operation the stream records the gap (Gap). When the bounds cannot be
// read the stream goes on unchecked: the log being away shows at its first
// read.
func (f *Follower) checkResume(ctx context.Context, s *Stream, after uint64) *apierr.Error {
	b, err := f.bounds(ctx, false)
	if err == nil && after > b.last {
		// Maybe stored since the bounds were read: ask again (a failure
		// remembered is not asked again: the resume goes on unchecked).
		b, err = f.bounds(ctx, true)
	}
	if err != nil {
		f.log.Warn("livestream: the log's bounds could not be read; the resume is not checked", "err", err)
		return nil
	}
	if after > b.last {
		f.m.resumes.WithLabelValues("beyond_end").Inc()
		return apierr.Fieldf(apierr.InvalidCursor, "Last-Event-ID",
			"%d is beyond the log's last operation (%d): the gateway's log is not the one that sequence came from (restored, recreated, or its last moments lost); read /channel/history again from the start", after, b.last)
	}
	if after+1 < b.first {
		f.m.resumes.WithLabelValues("gap").Inc()
		s.gapFirst = b.first
	}
	return nil
}

// Gap reports, for a stream resumed after operations of the log that have
// since aged out, the log's first retained sequence: the operations after
// the resume point and before it are gone, the channel's among them if it
// had any.
func (s *Stream) Gap() (firstSeq uint64, ok bool) { return s.gapFirst, s.gapFirst != 0 }
