// Package timeouts closes the open Events whose deadline has passed with
// no later operation (Dynatrace problem events not refreshed within their
// timeout), with status timed_out.
//
// The close is an ordinary operation appended through the writer, on the
// condition that the event's latest operation is still the one the deadline
// was read from (ops.Validated.ExpectSeq). Every ingest replica runs a
// Closer; when several race on one event, the broker's expected last
// subject sequence lets exactly one close it, and a refresh that lands
// first makes every close fail harmlessly: the next scan reads the new
// deadline.
package timeouts

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/wire"
)

// Status and Message of a gateway's timeout close.
const (
	Status  = "timed_out"
	Message = "No refresh before the deadline: closed by the gateway"
)

// Reader answers reads from the projections (a *readfwd.Forwarder).
type Reader interface {
	Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error)
}

// Appender appends validated operations (an *oplog.Writer).
type Appender interface {
	Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error)
}

// Options configure a Closer.
type Options struct {
	// Interval is the time between scans. Default 1s: a deadline is met
	// within about Interval plus the projection's lag.
	Interval time.Duration
	// Batch is the most events closed per scan. Default 500.
	Batch int
	// Now is the clock deadlines are compared with. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Closer scans for passed deadlines and closes their events. Start it
// with Start; the caller MUST call Close.
type Closer struct {
	reader Reader
	app    Appender
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts the scan loop.
func Start(reader Reader, app Appender, opts Options) *Closer {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Closer{reader: reader, app: app, opts: opts, log: opts.Logger, cancel: cancel, done: make(chan struct{})}
	go c.loop(ctx)
	return c
}

// Close stops the loop and waits for it; an append in flight is cancelled.
func (c *Closer) Close() {
	c.cancel()
	<-c.done
}

func (c *Closer) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.Scan(ctx)
	}
}

// Scan closes the events due now, one page of Batch at a time, each page
// after the last one's last event whatever it closed (scanning from the
// first again, 500 events that could not be closed, in a deleted channel
// or refused for good, held back every later deadline for ever). Closes
// the projection has not folded yet come back due at the next scan and
// are refused by their expected sequence. It returns how many were due
// and how many of them this call closed.
func (c *Closer) Scan(ctx context.Context) (due, closed int) {
	var after *reads.DueEvent
	for ctx.Err() == nil {
		page := c.scan(ctx, after)
		due += len(page)
		for _, d := range page {
			if ctx.Err() != nil {
				break
			}
			if c.close(ctx, d) {
				closed++
			}
		}
		if len(page) < c.opts.Batch {
			break
		}
		last := &page[len(page)-1]
		if after != nil && !dueBefore(*after, *last) {
			// A projector that does not know DueAfter (an older version,
			// during an upgrade) answers the first page again: the next
			// tick reads it, rather than this loop for ever.
			break
		}
		after = last
	}
	return due, closed
}

// dueBefore says whether a comes before b in the deadline index's order:
// deadline, then channel, then event.
func dueBefore(a, b reads.DueEvent) bool {
	if a.Deadline != b.Deadline {
		return a.Deadline < b.Deadline
	}
	if a.ChannelID != b.ChannelID {
		return a.ChannelID < b.ChannelID
	}
	return a.EventID < b.EventID
}

// scan reads one page of the events due now, after after (nil: from the
// first).
func (c *Closer) scan(ctx context.Context, after *reads.DueEvent) []reads.DueEvent {
	now := c.opts.Now().UnixMilli()
	b, aerr := c.reader.Read(ctx, &reads.Request{Route: reads.DeadlinesDue, Before: now + 1, Limit: c.opts.Batch, DueAfter: after})
	if aerr != nil {
		c.log.Debug("timeouts: no deadline answer", "code", aerr.Code)
		return nil
	}
	var data reads.DueData
	if err := json.Unmarshal(b, &data); err != nil {
		c.log.Error("timeouts: decode due deadlines", "err", err)
		return nil
	}
	return data.Items
}

// close appends the timeout close of d and reports whether it did.
func (c *Closer) close(ctx context.Context, d reads.DueEvent) bool {
	at := wire.Millis(d.Deadline)
	opID := "timeout-" + d.EventID
	req := ops.EventRequest{
		ChannelID: &d.ChannelID, EventID: &d.EventID, OpID: &opID,
		Status: ptr(Status), Message: ptr(Message), Severity: &d.Severity,
		EventTime: &at, EndedAt: &at,
	}
	v, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &req)
	if aerr != nil {
		c.log.Error("timeouts: invalid close", "event_id", d.EventID, "code", aerr.Code, "err", aerr.Detail)
		return false
	}
	v.ExpectSeq = d.LastSeq
	res, aerr := c.app.Append(ctx, v)
	switch {
	case aerr == nil && !res.Replayed:
		c.log.Info("timeouts: closed event", "channel_id", d.ChannelID, "event_id", d.EventID, "deadline", d.Deadline)
		return true
	case aerr == nil:
	case aerr.Code == apierr.SequenceMismatch, aerr.Code == apierr.EventClosed, aerr.Code == apierr.EventNotFound:
		// Refreshed, closed or gone since the projection was read.
	default:
		c.log.Warn("timeouts: close failed; retried on the next scan", "event_id", d.EventID, "code", aerr.Code)
	}
	return false
}

func ptr[T any](v T) *T { return &v }
