// Package livestream follows channels' operations in the log for
// GET /channel/stream: a channel's history from a resume point, then live
// operations as they are appended.
//
// The live part is shared: a process reads PUSHGO_OPS with one ordered
// consumer (the feed) while at least one stream is open, and fans each
// operation out in memory to the streams of its channel. A stream's history
// is read with direct gets (no consumer at all), so the consumers on
// PUSHGO_OPS do not grow with the number of streams or of channels
// followed (JetStream refuses a stream's 1,001st consumer by default, which
// the projector and the pusher need too).
//
// Each stream has a bounded buffer of live operations. A stream that falls
// further behind (a slow client) is taken off the feed and reads on from
// the log, where it left off, until it has caught up: it never holds up the
// feed or the other streams, and it misses nothing.
//
// Streams are capped per process and per channel; over a cap Open answers
// 429 too_many_streams with Retry-After.
package livestream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// Defaults of Options.
const (
	// DefaultMaxStreams is the default cap on the streams one process
	// serves at once (PUSHGO_STREAMS_MAX).
	DefaultMaxStreams = 10_000
	// DefaultMaxPerChannel is the default cap on one channel's streams in
	// one process (PUSHGO_STREAMS_PER_CHANNEL_MAX).
	DefaultMaxPerChannel = 1_000
	// DefaultMaxPerClient is the default cap on one client address's
	// streams in one process (PUSHGO_STREAMS_PER_CLIENT_MAX): anyone may
	// create channels, and ten of them held every stream of the process.
	DefaultMaxPerClient = 100
	// DefaultBuffer is how many live operations a stream may have waiting
	// before it is taken off the feed to read on from the log.
	DefaultBuffer = 128
)

const (
	// refusedRetryAfter is the Retry-After, in seconds, of a stream refused
	// over a cap.
	refusedRetryAfter = 5
	// unavailableRetryAfter is the Retry-After, in seconds, of a stream
	// refused because the feed could not be started.
	unavailableRetryAfter = 1
	// feedInactive is the feed consumer's inactive threshold: the broker
	// removes it that long after a process died without deleting it.
	feedInactive = 30 * time.Second
	// feedHeartbeat is the feed pull's idle heartbeat: two missed ones
	// make the client recreate the feed's consumer (deleted under it, or
	// lost by a broker), so the streams miss at most a few seconds of live
	// operations, not the ten that the client's default (5 s) would take.
	feedHeartbeat = time.Second
	// requestTimeout bounds one request to the broker (a history batch, a
	// read from the stream leader, the feed's start).
	requestTimeout = 5 * time.Second
	// batchSize and batchBytes bound one direct get of history, which is
	// what a stream whose client stops reading holds: 256 items and 256 KiB
	// held 320 KiB a stream of 1 KB operations, 3 GiB at the default cap.
	// A long replay pays one round trip (about a millisecond) a batch.
	batchSize  = 64
	batchBytes = 32 << 10
)

// Options configure a Follower. Zero values take the defaults.
type Options struct {
	// MaxStreams caps the streams open at once in this process.
	MaxStreams int
	// MaxPerChannel caps one channel's streams open at once in this
	// process.
	MaxPerChannel int
	// MaxPerClient caps one client address's streams open at once in
	// this process (an IPv6 address counts as its /64, as the limits
	// count it); a stream opened without a client in its context
	// (limits.WithClient) is not counted.
	MaxPerClient int
	// Buffer is how many live operations one stream may have waiting; a
	// stream further behind reads on from the log.
	Buffer int
	Logger *slog.Logger
}

// Op is one operation of a channel, as a stream gives it.
type Op struct {
	// Seq is the operation's sequence in PUSHGO_OPS.
	Seq uint64
	// Name is the operation (event.create, message, ...).
	Name ops.Name
	// Item is the history item JSON (reads.AppendItem). Streams share it:
	// read only.
	Item []byte
	// TTL is a message's ttl (Unix ms; 0: none): a stream leaves out a
	// message whose ttl has passed, as /channel/history does (the spec:
	// expired messages are not replayed).
	TTL int64
}

// opOf is the Op of the operation at seq, logged as data.
func opOf(seq uint64, name ops.Name, data []byte) *Op {
	op := &Op{Seq: seq, Name: name, Item: reads.AppendItem(nil, seq, name.Kind(), data)}
	if name.Kind() == ops.KindMessage {
		op.TTL, _ = ops.EnvelopeMessageTTL(data)
	}
	return op
}

// expired reports whether op is a message whose ttl is not after now (ms).
func (op *Op) expired(now int64) bool { return op.TTL != 0 && op.TTL <= now }

// Follower serves the streams of one process. It is safe for concurrent
// use. The caller MUST call Close.
type Follower struct {
	js   jetstream.JetStream
	nc   *nats.Conn
	opts Options
	log  *slog.Logger
	m    metrics
	// directGet and msgGet are the JetStream API subjects of PUSHGO_OPS's
	// direct get (any replica, batches) and message get (the leader).
	directGet, msgGet string
	replies           *replyMux

	// ended is closed, read without the lock by every stream's Next.
	ended atomic.Bool

	mu       sync.Mutex
	closed   bool
	open     int
	channels map[string]*channel
	clients  map[string]int // open streams by client address key
	// feed is the running feed, nil while no stream is open (or after the
	// last one failed).
	feed *feed
	// mark: every operation with a sequence above mark reaches the streams
	// registered with the feed now. It is the last sequence the feed
	// dispatched, or the stream's last sequence when the feed started.
	mark uint64
	wg   sync.WaitGroup

	// boundsMu guards logBounds, the log's bounds as last read for a
	// resume (resume.go).
	boundsMu  sync.Mutex
	logBounds logBounds
}

// channel is one channel's streams in this process.
type channel struct {
	open int               // streams admitted (Open .. Close)
	subs map[*sub]struct{} // streams registered with the feed
}

// sub is one registration of a stream with the feed. The feed closes ch
// when it takes the stream off (its buffer was full, or the feed ended);
// the stream then reads on from the log.
type sub struct{ ch chan *Op }

// feed is one run of the shared consumer.
type feed struct {
	ready  chan struct{} // closed once started or failed
	err    error         // why it failed to start; read after ready
	cancel context.CancelFunc
}

// New returns a Follower over js.
func New(js jetstream.JetStream, o Options) *Follower {
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.MaxPerChannel <= 0 {
		o.MaxPerChannel = DefaultMaxPerChannel
	}
	if o.MaxPerClient <= 0 {
		o.MaxPerClient = DefaultMaxPerClient
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Follower{
		js: js, nc: js.Conn(), opts: o, log: o.Logger, m: newMetrics(),
		directGet: jetstream.DefaultAPIPrefix + "DIRECT.GET." + streams.Ops,
		msgGet:    jetstream.DefaultAPIPrefix + "STREAM.MSG.GET." + streams.Ops,
		replies:   &replyMux{nc: js.Conn()},
		channels:  map[string]*channel{},
		clients:   map[string]int{},
	}
}

// Open admits one stream of channelID's operations with a sequence above
// after: 429 too_many_streams over a cap, 503 broker_unavailable when the
// feed cannot be started, 400 invalid_cursor for an after beyond the log's
// end (resume.go; a resume before its first retained operation is
// admitted, and Gap says so). The caller MUST Close the stream.
func (f *Follower) Open(ctx context.Context, channelID string, after uint64) (*Stream, *apierr.Error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, unavailable()
	}
	if f.open >= f.opts.MaxStreams {
		f.mu.Unlock()
		f.m.refused.WithLabelValues("process").Inc()
		return nil, &apierr.Error{Code: apierr.TooManyStreams, RetryAfter: refusedRetryAfter,
			Detail: fmt.Sprintf("this gateway serves %d live streams, its limit; retry later", f.opts.MaxStreams)}
	}
	client, _ := limits.ClientOf(ctx)
	if client.Key != "" && f.clients[client.Key] >= f.opts.MaxPerClient {
		f.mu.Unlock()
		f.m.refused.WithLabelValues("client").Inc()
		return nil, &apierr.Error{Code: apierr.TooManyStreams, RetryAfter: refusedRetryAfter,
			Detail: fmt.Sprintf("your address has %d live streams open, its limit; close one or retry later", f.opts.MaxPerClient)}
	}
	c := f.channels[channelID]
	if c != nil && c.open >= f.opts.MaxPerChannel {
		f.mu.Unlock()
		f.m.refused.WithLabelValues("channel").Inc()
		return nil, &apierr.Error{Code: apierr.TooManyStreams, RetryAfter: refusedRetryAfter,
			Detail: fmt.Sprintf("this channel has %d live streams open, its limit; retry later", f.opts.MaxPerChannel)}
	}
	if c == nil {
		c = &channel{subs: map[*sub]struct{}{}}
		f.channels[channelID] = c
	}
	c.open++
	f.open++
	if client.Key != "" {
		f.clients[client.Key]++
	}
	f.m.open.Set(float64(f.open))
	fd := f.feedLocked()
	f.mu.Unlock()

	s := &Stream{f: f, channel: channelID, client: client.Key, filter: streams.ChannelSubjects(channelID), last: after}
	if err := await(ctx, fd); err != nil {
		s.Close()
		if ctx.Err() == nil {
			f.log.Warn("livestream: feed unavailable", "err", err)
		}
		return nil, unavailable()
	}
	if after > 0 {
		if aerr := f.checkResume(ctx, s, after); aerr != nil {
			s.Close()
			return nil, aerr
		}
	}
	return s, nil
}

func unavailable() *apierr.Error {
	return &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "live streams are unavailable; retry later", RetryAfter: unavailableRetryAfter}
}

// await waits until fd started, or failed.
func await(ctx context.Context, fd *feed) error {
	select {
	case <-fd.ready:
		return fd.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// feedLocked returns the running feed, starting one when there is none.
// f.mu is held.
func (f *Follower) feedLocked() *feed {
	if f.feed != nil {
		return f.feed
	}
	ctx, cancel := context.WithCancel(context.Background())
	fd := &feed{ready: make(chan struct{}), cancel: cancel}
	f.feed = fd
	f.m.feeds.Inc()
	f.wg.Add(1)
	go f.runFeed(ctx, fd)
	return fd
}

// register puts s on the feed and returns the mark: every operation of
// s's channel above it will reach s.sub, until the feed closes it.
func (f *Follower) register(ctx context.Context, s *Stream) (uint64, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return 0, ErrClosed
		}
		fd := f.feedLocked()
		select {
		case <-fd.ready:
		default:
			f.mu.Unlock()
			if err := await(ctx, fd); err != nil {
				return 0, fmt.Errorf("livestream: feed: %w", err)
			}
			continue // check again under the lock: it may have ended since
		}
		// A feed that failed to start is no longer f.feed, so fd started.
		s.sub = &sub{ch: make(chan *Op, f.opts.Buffer)}
		f.channels[s.channel].subs[s.sub] = struct{}{}
		mark := f.mark
		f.mu.Unlock()
		return mark, nil
	}
}

// release ends s's admission (Stream.Close); the last stream stops the
// feed.
func (f *Follower) release(s *Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.channels[s.channel]
	if s.sub != nil {
		delete(c.subs, s.sub) // nobody reads it any more: left open
		s.sub = nil
	}
	if c.open--; c.open == 0 {
		delete(f.channels, s.channel)
	}
	if s.client != "" {
		if f.clients[s.client]--; f.clients[s.client] <= 0 {
			delete(f.clients, s.client)
		}
	}
	f.open--
	f.m.open.Set(float64(f.open))
	if f.open == 0 && f.feed != nil {
		f.feed.cancel()
		f.feed = nil
	}
}

// runFeed runs one feed: it starts the consumer (at the stream's end),
// then dispatches every operation to the streams of its channel, until it
// is stopped (no stream left, Close) or fails. The consumer is deleted
// when it ends.
func (f *Follower) runFeed(ctx context.Context, fd *feed) {
	defer f.wg.Done()
	defer f.m.feeds.Dec()
	defer fd.cancel()
	cons, it, err := f.startFeed(ctx, fd)
	if err != nil {
		f.mu.Lock()
		if f.feed == fd {
			f.feed = nil
		}
		f.mu.Unlock()
		fd.err = err
		close(fd.ready)
		return
	}
	close(fd.ready)
	defer f.deleteConsumer(cons)
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.fail(fd, err)
			return
		}
		f.dispatch(fd, m)
	}
}

// startFeed creates the feed's consumer after the stream's last sequence
// and sets the mark to it.
func (f *Follower) startFeed(ctx context.Context, fd *feed) (jetstream.Consumer, jetstream.MessagesContext, error) {
	if !f.nc.IsConnected() { // not a wait of requestTimeout for the 503
		return nil, nil, fmt.Errorf("livestream: broker connection %s", f.nc.Status())
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := f.js.Stream(rctx, streams.Ops)
	if err != nil {
		return nil, nil, fmt.Errorf("livestream: stream %s: %w", streams.Ops, err)
	}
	last := st.CachedInfo().State.LastSeq
	cons, err := f.js.OrderedConsumer(rctx, streams.Ops, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.OpsSubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: last + 1,
		InactiveThreshold: feedInactive,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("livestream: feed consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(feedHeartbeat))
	if err != nil {
		f.deleteConsumer(cons)
		return nil, nil, fmt.Errorf("livestream: feed consumer: %w", err)
	}
	f.mu.Lock()
	if f.feed == fd {
		f.mark = last
	}
	f.mu.Unlock()
	return cons, it, nil
}

// deleteConsumer removes the feed's consumer at once (its inactive
// threshold is the backstop when the process dies first).
func (f *Follower) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := f.js.DeleteConsumer(ctx, streams.Ops, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		f.log.Debug("livestream: delete feed consumer", "consumer", info.Name, "err", err)
	}
}

// dispatch hands one operation to the streams of its channel. A stream
// whose buffer is full is taken off the feed (its channel closed): it
// reads on from the log.
func (f *Follower) dispatch(fd *feed, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		f.log.Warn("livestream: feed message without metadata", "subject", m.Subject(), "err", err)
		return
	}
	seq := md.Sequence.Stream
	id, _, _, _ := streams.ParseOpSubject(m.Subject()) // "" for another subject: no stream follows it
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.feed != fd {
		return
	}
	f.mark = seq
	c := f.channels[id]
	if c == nil || len(c.subs) == 0 {
		return
	}
	name := ops.Name(m.Headers().Get(streams.HeaderOp))
	op := opOf(seq, name, m.Data())
	for s := range c.subs {
		select {
		case s.ch <- op:
		default:
			delete(c.subs, s)
			close(s.ch)
			f.m.behind.Inc()
		}
	}
}

// fail ends a feed that broke: its streams read on from the log, and the
// next one to register starts a new feed.
func (f *Follower) fail(fd *feed, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.feed != fd {
		return
	}
	f.log.Warn("livestream: feed ended; streams read on from the log", "err", err)
	f.feed = nil
	f.dropAllLocked()
}

// dropAllLocked takes every stream off the feed.
func (f *Follower) dropAllLocked() {
	for _, c := range f.channels {
		for s := range c.subs {
			close(s.ch)
		}
		clear(c.subs)
	}
}

// ErrClosed is what Next returns once the follower is ended: the process
// is stopping, and the client resumes elsewhere with Last-Event-ID.
var ErrClosed = errors.New("livestream: closed")

// End ends every open stream (its Next returns ErrClosed at once, or as
// soon as a read under way returns) and stops the feed, without waiting
// for it: what the HTTP server's shutdown calls, since a stream's request
// never ends by itself and the server's shutdown would wait out its
// grace period for it. New streams are refused (503). Later calls do
// nothing.
func (f *Follower) End() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.ended.Store(true)
	if f.feed != nil {
		f.feed.cancel()
		f.feed = nil
	}
	f.dropAllLocked()
}

// Close ends the streams (End) and waits for the feed to stop. Later
// calls do nothing more.
func (f *Follower) Close() {
	f.End()
	f.wg.Wait()
	f.replies.close()
}

// Collectors are the streams' metrics, for the process's /metrics.
func (f *Follower) Collectors() []prometheus.Collector {
	return []prometheus.Collector{f.m.open, f.m.refused, f.m.behind, f.m.feeds, f.m.resumes}
}

type metrics struct {
	open    prometheus.Gauge
	refused *prometheus.CounterVec
	behind  prometheus.Counter
	feeds   prometheus.Gauge
	resumes *prometheus.CounterVec
}

func newMetrics() metrics {
	m := metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgo_streams_open", Help: "GET /channel/stream streams open in this process.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_streams_refused_total", Help: "Streams refused with 429 too_many_streams, by the cap reached (process, channel, client).",
		}, []string{"limit"}),
		behind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgo_streams_behind_total", Help: "Times a stream fell more than its buffer behind the live feed and read on from the log.",
		}),
		feeds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgo_stream_feeds", Help: "Consumers this process holds on PUSHGO_OPS for its streams (0 or 1).",
		}),
	}
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushgo_streams_resumes_checked_total",
		Help: "Streams resumed (Last-Event-ID) found not to continue the log: beyond_end (refused: the log is not the one the sequence came from), gap (operations after it aged out).",
	}, []string{"outcome"})
	for _, l := range []string{"process", "channel", "client"} {
		m.refused.WithLabelValues(l)
	}
	for _, l := range []string{"beyond_end", "gap"} {
		m.resumes.WithLabelValues(l)
	}
	return m
}
