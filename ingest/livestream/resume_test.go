package livestream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestAResumeBeyondTheLogsEndIsRefused: a Last-Event-ID past the log's
// last operation comes from another log (a broker restored from a copy,
// the stream recreated, the last moments of a sync=1s log lost): admitted,
// the stream skipped every new operation up to it, for good and in
// silence. It is refused with invalid_cursor; a resume at the log's end
// is not.
func TestAResumeBeyondTheLogsEndIsRefused(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	ch := chanID(1)
	last := publish(t, b.JS, ch, "a-0")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if s, aerr := f.Open(ctx, ch, last+50); aerr == nil || aerr.Code != apierr.InvalidCursor {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a resume after %d in a log ending at %d: %v, want invalid_cursor", last+50, last, aerr)
	}
	if got := metric(t, f, "pushgo_streams_resumes_checked_total", "outcome", "beyond_end"); got != 1 {
		t.Errorf("beyond_end resumes counted %v, want 1", got)
	}
	s := open(t, f, ch, last)
	defer s.Close()
	if _, gap := s.Gap(); gap {
		t.Error("a resume at the log's end reported a gap")
	}
	live := appended{publish(t, b.JS, ch, "a-1"), "a-1"}
	check(t, next(t, s), live)
	// Stored a moment ago, after the bounds were last read: still admitted.
	just := publish(t, b.JS, ch, "a-2")
	s2 := open(t, f, ch, just)
	s2.Close()
}

// TestAResumeIntoAGapIsSaid: a Last-Event-ID whose next operations aged out
// of the log (the retention) is admitted, and the stream says where the
// log now starts (Gap) before giving what is left; a resume right before
// the first retained operation has no gap.
func TestAResumeIntoAGapIsSaid(t *testing.T) {
	so := streams.DefaultOptions()
	so.Retention, so.DedupWindow = 3*time.Second, time.Second
	b := brokertest.Start(t, brokertest.Streams(so))
	f := follower(t, b.JS, livestream.Options{})
	ch := chanID(1)
	var hist []appended
	add := func(n int) {
		for range n {
			id := fmt.Sprintf("a-%d", len(hist))
			hist = append(hist, appended{publish(t, b.JS, ch, id), id})
		}
	}
	add(3)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	// The first three age out, then three more come.
	for {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.FirstSeq > hist[2].seq {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	add(3)
	first := hist[3].seq // what the retention left
	s := open(t, f, ch, hist[0].seq)
	if got, gap := s.Gap(); !gap || got != first {
		t.Fatalf("a resume after %d with the log starting at %d: gap %v at %d", hist[0].seq, first, gap, got)
	}
	for _, want := range hist[3:] {
		check(t, next(t, s), want)
	}
	s.Close()
	if got := metric(t, f, "pushgo_streams_resumes_checked_total", "outcome", "gap"); got != 1 {
		t.Errorf("gaps counted %v, want 1", got)
	}
	s = open(t, f, ch, hist[2].seq)
	defer s.Close()
	if _, gap := s.Gap(); gap {
		t.Errorf("a resume right before the log's first operation (%d) reported a gap", first)
	}
}
