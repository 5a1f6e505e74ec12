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
		// A full batch that closed something means more are due: scan
		// again at once. One that closed nothing is the projection lagging
		// behind closes already made: wait for the next tick.
		for due, closed := c.Scan(ctx); due == c.opts.Batch && closed > 0 && ctx.Err() == nil; due, closed = c.Scan(ctx) {
		}
	}
}

// Scan closes the events due now; it returns how many were due and how
// many of them this call closed.
func (c *Closer) Scan(ctx context.Context) (due, closed int) {
	now := c.opts.Now().UnixMilli()
	b, aerr := c.reader.Read(ctx, &reads.Request{Route: reads.DeadlinesDue, Before: now + 1, Limit: c.opts.Batch})
	if aerr != nil {
		c.log.Debug("timeouts: no deadline answer", "code", aerr.Code)
		return 0, 0
	}
	var data reads.DueData
	if err := json.Unmarshal(b, &data); err != nil {
		c.log.Error("timeouts: decode due deadlines", "err", err)
		return 0, 0
	}
	for _, d := range data.Items {
		if ctx.Err() != nil {
			break
		}
		if c.close(ctx, d) {
			closed++
		}
	}
	return len(data.Items), closed
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
