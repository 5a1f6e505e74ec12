package livestream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// wait bounds every wait for something that should come.
const wait = 10 * time.Second

// chanID is a channel id for test channel i (the subjects only need a
// token without dots).
func chanID(i int) string { return fmt.Sprintf("CH%024d", i) }

// appended is one operation appended by a test.
type appended struct {
	seq  uint64
	opID string
}

// published alternates publish's subjects.
var published atomic.Uint64

// publish appends one message operation to channel ch, as ingest does
// (subject, op header, envelope), and returns its sequence: every other
// one on the channel's messages subject (a message with a generated
// op_id), the others on subjects of their own (a sender's op_id).
func publish(t testing.TB, js jetstream.JetStream, ch, opID string) uint64 {
	t.Helper()
	subject := streams.OpSubject(ch, ops.KindMessage, opID)
	if published.Add(1)%2 == 0 {
		subject = streams.MessagesSubject(ch)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(streams.HeaderOp, string(ops.MessageCreate))
	m.Data = fmt.Appendf(nil, `{"v":1,"op":"message","channel_id":%q,"op_id":%q,"payload":{}}`, ch, opID)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("publish %s: %v", opID, err)
	}
	return ack.Sequence
}

// check fails unless op is the operation a: its sequence, and the history
// item carrying it and a's op_id.
func check(t testing.TB, op *livestream.Op, a appended) {
	t.Helper()
	if op == nil {
		t.Fatalf("no operation, want seq %d", a.seq)
	}
	var item struct {
		Seq        uint64 `json:"seq"`
		EntityType string `json:"entity_type"`
		OpID       string `json:"op_id"`
	}
	if err := json.Unmarshal(op.Item, &item); err != nil {
		t.Fatalf("seq %d: item %s: %v", op.Seq, op.Item, err)
	}
	if op.Seq != a.seq || item.Seq != a.seq || item.OpID != a.opID || item.EntityType != "message" || op.Name != ops.MessageCreate {
		t.Fatalf("got seq %d %s %s, want seq %d op_id %s", op.Seq, op.Name, op.Item, a.seq, a.opID)
	}
}

// next returns the stream's next operation, failing t when none comes.
func next(t testing.TB, s *livestream.Stream) *livestream.Op {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	op, err := s.Next(ctx, 0)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return op
}

func open(t testing.TB, f *livestream.Follower, ch string, after uint64) *livestream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, aerr := f.Open(ctx, ch, after)
	if aerr != nil {
		t.Fatalf("open %s after %d: %v", ch, after, aerr)
	}
	return s
}

func follower(t testing.TB, js jetstream.JetStream, o livestream.Options) *livestream.Follower {
	f := livestream.New(js, o)
	t.Cleanup(f.Close)
	return f
}

// consumers is the number of consumers on PUSHGO_OPS.
func consumers(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Consumers
}

// waitConsumers waits until PUSHGO_OPS has want consumers.
func waitConsumers(t testing.TB, js jetstream.JetStream, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n := consumers(t, js)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUSHGO_OPS has %d consumers, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric is the value of the metric family name (with the label pair, if
// given) among f's collectors.
func metric(t testing.TB, f *livestream.Follower, name string, label ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) == 2 {
				match := false
				for _, l := range m.GetLabel() {
					match = match || l.GetName() == label[0] && l.GetValue() == label[1]
				}
				if !match {
					continue
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s %v", name, label)
	return 0
}

// TestShortLivedStreamsLeaveNoConsumer is the regression test of issue
// 12's row "each /channel/stream client creates a JetStream consumer that
// outlives it by 5 minutes": each stream used to create an ordered
// consumer left to expire, and JetStream refuses a stream's 1,001st
// consumer, so after ~1,000 short-lived streams every new one failed (and
// a new projector replica could not create its own). Here 1,200 streams
// are opened, read and closed; no consumer is left, and a new stream gets
// the history and a live operation.
func TestShortLivedStreamsLeaveNoConsumer(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	ch := chanID(1)
	first := appended{publish(t, b.JS, ch, "op-0"), "op-0"}
	for i := range 1200 {
		s := open(t, f, ch, 0)
		check(t, next(t, s), first)
		s.Close()
		if i%300 == 0 {
			if n := consumers(t, b.JS); n > 2 { // the feed of this stream, the last one's being deleted
				t.Fatalf("after %d streams PUSHGO_OPS has %d consumers", i+1, n)
			}
		}
	}
	waitConsumers(t, b.JS, 0)
	if open := metric(t, f, "pushgo_streams_open"); open != 0 {
		t.Fatalf("pushgo_streams_open %v after every stream closed", open)
	}

	s := open(t, f, ch, 0)
	defer s.Close()
	check(t, next(t, s), first)
	live := appended{publish(t, b.JS, ch, "op-live"), "op-live"}
	check(t, next(t, s), live)
	if n := consumers(t, b.JS); n != 1 {
		t.Fatalf("one stream open: PUSHGO_OPS has %d consumers, want 1", n)
	}
}

// TestStreamsShareOneConsumer: 300 streams over 50 channels hold one
// consumer on PUSHGO_OPS, and each gets its own channel's live
// operations, none of another's.
func TestStreamsShareOneConsumer(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	const channels, perChannel = 50, 6
	var all [][]*livestream.Stream
	for c := range channels {
		var ss []*livestream.Stream
		for range perChannel {
			ss = append(ss, open(t, f, chanID(c), 0))
		}
		all = append(all, ss)
	}
	if n := consumers(t, b.JS); n != 1 {
		t.Fatalf("%d streams open: PUSHGO_OPS has %d consumers, want 1", channels*perChannel, n)
	}
	for round := range 2 {
		want := make([]appended, channels)
		for c := range channels {
			id := fmt.Sprintf("c%d-r%d", c, round)
			want[c] = appended{publish(t, b.JS, chanID(c), id), id}
		}
		for c, ss := range all {
			for _, s := range ss {
				check(t, next(t, s), want[c])
			}
		}
	}
	if got := metric(t, f, "pushgo_streams_open"); got != channels*perChannel {
		t.Fatalf("pushgo_streams_open %v, want %d", got, channels*perChannel)
	}
	for _, ss := range all {
		for _, s := range ss {
			s.Close()
		}
	}
	waitConsumers(t, b.JS, 0)
}

// TestStreamCaps: over the per-channel or the per-process cap a stream is
// refused with 429 too_many_streams and a Retry-After, counted by cap; a
// closed stream frees its place.
func TestStreamCaps(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{MaxStreams: 4, MaxPerChannel: 2})
	ctx := context.Background()
	refused := func(ch string, limit string) {
		t.Helper()
		before := metric(t, f, "pushgo_streams_refused_total", "limit", limit)
		s, aerr := f.Open(ctx, ch, 0)
		if aerr == nil {
			s.Close()
			t.Fatalf("stream of %s admitted over the %s cap", ch, limit)
		}
		if aerr.Code != apierr.TooManyStreams || aerr.Status() != 429 || aerr.RetryAfter <= 0 {
			t.Fatalf("refusal %v (status %d, Retry-After %d), want 429 too_many_streams with Retry-After", aerr, aerr.Status(), aerr.RetryAfter)
		}
		if got := metric(t, f, "pushgo_streams_refused_total", "limit", limit); got != before+1 {
			t.Fatalf("pushgo_streams_refused_total{limit=%s} %v, want %v", limit, got, before+1)
		}
	}
	a1, a2 := open(t, f, chanID(1), 0), open(t, f, chanID(1), 0)
	refused(chanID(1), "channel")
	b1, b2 := open(t, f, chanID(2), 0), open(t, f, chanID(2), 0)
	refused(chanID(3), "process")
	a1.Close()
	a3 := open(t, f, chanID(1), 0)
	refused(chanID(3), "process")
	for _, s := range []*livestream.Stream{a2, a3, b1, b2} {
		s.Close()
	}
	open(t, f, chanID(3), 0).Close()
}

// TestStreamCapPerClient: one client address holds at most MaxPerClient
// streams, across channels (anyone may create channels: ten held every
// stream of the process); another address is admitted meanwhile, an IPv6
// address counts as its /64, and a closed stream frees its place.
func TestStreamCapPerClient(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{MaxPerClient: 2})
	from := func(addr string) context.Context { return limits.WithClient(context.Background(), addr) }
	a1, aerr := f.Open(from("192.0.2.1"), chanID(1), 0)
	if aerr != nil {
		t.Fatal(aerr)
	}
	a2, aerr := f.Open(from("192.0.2.1"), chanID(2), 0)
	if aerr != nil {
		t.Fatal(aerr)
	}
	before := metric(t, f, "pushgo_streams_refused_total", "limit", "client")
	if s, aerr := f.Open(from("192.0.2.1"), chanID(3), 0); aerr == nil || aerr.Code != apierr.TooManyStreams || aerr.RetryAfter <= 0 {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a third stream of one address: %v, want 429 too_many_streams with Retry-After", aerr)
	}
	if got := metric(t, f, "pushgo_streams_refused_total", "limit", "client"); got != before+1 {
		t.Fatalf("pushgo_streams_refused_total{limit=client} %v, want %v", got, before+1)
	}
	other, aerr := f.Open(from("192.0.2.2"), chanID(3), 0)
	if aerr != nil {
		t.Fatalf("another address refused: %v", aerr)
	}
	other.Close()
	v6a, aerr := f.Open(from("2001:db8::1"), chanID(1), 0)
	if aerr != nil {
		t.Fatal(aerr)
	}
	v6b, aerr := f.Open(from("2001:db8::2"), chanID(1), 0)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if s, aerr := f.Open(from("2001:db8::ffff"), chanID(1), 0); aerr == nil {
		s.Close()
		t.Fatal("a third stream of one IPv6 /64 admitted")
	}
	v6a.Close()
	v6b.Close()
	a1.Close()
	a3, aerr := f.Open(from("192.0.2.1"), chanID(3), 0)
	if aerr != nil {
		t.Fatalf("a stream after one of the address's closed: %v", aerr)
	}
	a2.Close()
	a3.Close()
}

// TestResumeAfterSequence: a stream gives exactly its channel's
// operations after the resume point, in log order, then live ones.
func TestResumeAfterSequence(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	a, other := chanID(1), chanID(2)
	var hist []appended
	for i := range 20 {
		id := fmt.Sprintf("a-%d", i)
		hist = append(hist, appended{publish(t, b.JS, a, id), id})
		publish(t, b.JS, other, fmt.Sprintf("b-%d", i))
	}
	for _, from := range []int{0, 5, 19, 20} {
		var after uint64
		if from > 0 {
			after = hist[from-1].seq
		}
		s := open(t, f, a, after)
		for _, want := range hist[from:] {
			check(t, next(t, s), want)
		}
		id := fmt.Sprintf("a-live-%d", from)
		live := appended{publish(t, b.JS, a, id), id}
		publish(t, b.JS, other, "b-"+id)
		check(t, next(t, s), live)
		if s.Last() != live.seq {
			t.Fatalf("Last %d, want %d", s.Last(), live.seq)
		}
		hist = append(hist, live)
		s.Close()
	}
}

// TestSlowStreamDoesNotHoldUpOthers: a stream that is not read while its
// channel gets more operations than its buffer holds neither holds up the
// other streams nor loses anything: when it reads again it gets every
// operation, in order, from the log.
func TestSlowStreamDoesNotHoldUpOthers(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{Buffer: 4})
	ch := chanID(1)
	slow, fast := open(t, f, ch, 0), open(t, f, ch, 0)
	defer slow.Close()
	defer fast.Close()
	// Both live: an operation reaches each.
	first := appended{publish(t, b.JS, ch, "first"), "first"}
	check(t, next(t, slow), first)
	check(t, next(t, fast), first)

	var want []appended
	for i := range 100 {
		id := fmt.Sprintf("op-%d", i)
		want = append(want, appended{publish(t, b.JS, ch, id), id})
		check(t, next(t, fast), want[i])
	}
	if got := metric(t, f, "pushgo_streams_behind_total"); got < 1 {
		t.Fatalf("pushgo_streams_behind_total %v: the slow stream was never taken off the feed", got)
	}
	for _, w := range want {
		check(t, next(t, slow), w)
	}
	// And it is live again.
	last := appended{publish(t, b.JS, ch, "last"), "last"}
	check(t, next(t, slow), last)
	check(t, next(t, fast), last)
}

// TestStreamsOpenedUnderLoad: streams opened at random moments, from
// random resume points, while the channel is written to, each get exactly
// the channel's operations after their resume point, in log order: the
// hand-over from the log to the live feed neither skips nor repeats one,
// also for streams with a tiny buffer that keep falling behind.
func TestStreamsOpenedUnderLoad(t *testing.T) {
	b := brokertest.Start(t)
	roomy := follower(t, b.JS, livestream.Options{})
	tiny := follower(t, b.JS, livestream.Options{Buffer: 1})
	ch, noise := chanID(1), chanID(2)
	const total, streamsN = 1500, 40
	w := &writer{}
	_, js := b.Conn(t)
	go w.run(js, ch, noise, total)
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	errs := make(chan error, streamsN)
	for i := range streamsN {
		// Open at a point of the writing, from a random resume point.
		for n, finished := w.progress(); n < i*total/streamsN && !finished; n, finished = w.progress() {
			time.Sleep(time.Millisecond)
		}
		var after uint64
		if h := w.appended(); len(h) > 0 && i%4 != 0 {
			after = h[rng.IntN(len(h))].seq
		}
		f := roomy
		if i%2 == 1 {
			f = tiny
		}
		s := open(t, f, ch, after)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			errs <- follow(s, after, w, i%3 == 0)
		}()
	}
	wg.Wait()
	close(errs)
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// writer appends a channel's operations (and another channel's) and keeps
// what it appended.
type writer struct {
	mu       sync.Mutex
	hist     []appended
	finished bool
	err      error // set before finished
}

func (w *writer) run(js jetstream.JetStream, ch, noise string, total int) {
	defer func() {
		w.mu.Lock()
		w.finished = true
		w.mu.Unlock()
	}()
	pub := func(ch, id string) (uint64, error) {
		m := nats.NewMsg(streams.OpSubject(ch, ops.KindMessage, id))
		m.Header.Set(streams.HeaderOp, string(ops.MessageCreate))
		m.Data = fmt.Appendf(nil, `{"op_id":%q}`, id)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			return 0, fmt.Errorf("publish %s: %w", id, err)
		}
		return ack.Sequence, nil
	}
	for i := range total {
		id := fmt.Sprintf("op-%d", i)
		seq, err := pub(ch, id)
		if err == nil && i%3 == 0 {
			_, err = pub(noise, "n-"+id)
		}
		w.mu.Lock()
		if seq != 0 {
			w.hist = append(w.hist, appended{seq, id})
		}
		w.err = err
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (w *writer) progress() (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.hist), w.finished
}

func (w *writer) appended() []appended {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.hist)
}

// follow reads s until the writer has finished and s gave its last
// operation, and checks it got exactly those after after, in order;
// dawdle makes it slow.
func follow(s *livestream.Stream, after uint64, w *writer, dawdle bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var got []uint64
	for {
		if _, finished := w.progress(); finished {
			h := w.appended()
			if len(h) == 0 || s.Last() >= h[len(h)-1].seq {
				var want []uint64
				for _, a := range h {
					if a.seq > after {
						want = append(want, a.seq)
					}
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("stream after %d: got %d operations, want %d; first difference at %s", after, len(got), len(want), firstDiff(got, want))
				}
				return nil
			}
		}
		op, err := s.Next(ctx, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("stream after %d: after %d operations (last seq %d): %w", after, len(got), s.Last(), err)
		}
		if op == nil {
			continue // idle: look at the writer again
		}
		got = append(got, op.Seq)
		if dawdle && len(got)%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func firstDiff(a, b []uint64) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: got seq %d, want %d", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("index %d (lengths %d, %d)", min(len(a), len(b)), len(a), len(b))
}

// TestStreamOutlivesItsFeedConsumer: when the feed's consumer is deleted
// under it (an operator, a broker that lost it), the streams go on and
// still get every live operation.
func TestStreamOutlivesItsFeedConsumer(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	ch := chanID(1)
	s := open(t, f, ch, 0)
	defer s.Close()
	a := appended{publish(t, b.JS, ch, "a"), "a"}
	check(t, next(t, s), a)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	var deleted int
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("deleted %d consumers, want the feed's one", deleted)
	}
	for i := range 5 {
		id := fmt.Sprintf("after-delete-%d", i)
		a := appended{publish(t, b.JS, ch, id), id}
		check(t, next(t, s), a)
	}
}

// TestClosedFollowerEndsStreams: End (what the HTTP server's shutdown
// calls) ends the open streams' reads with ErrClosed (the HTTP front then
// ends the response), a live one and one still reading its history, and
// refuses new ones.
func TestClosedFollowerEndsStreams(t *testing.T) {
	b := brokertest.Start(t)
	f := livestream.New(b.JS, livestream.Options{})
	defer f.Close()
	ch := chanID(1)
	s := open(t, f, ch, 0)
	a := appended{publish(t, b.JS, ch, "a"), "a"}
	check(t, next(t, s), a)
	for i := range 3 {
		publish(t, b.JS, ch, fmt.Sprintf("h%d", i))
	}
	behind := open(t, f, ch, 0) // reads the history first
	check(t, next(t, behind), a)
	f.End()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for name, st := range map[string]*livestream.Stream{"live": s, "reading its history": behind} {
		if op, err := st.Next(ctx, 0); !errors.Is(err, livestream.ErrClosed) {
			t.Fatalf("Next of a stream %s after End: %v %v, want ErrClosed at once", name, op, err)
		}
		st.Close()
	}
	if _, aerr := f.Open(ctx, ch, 0); aerr == nil || aerr.Code != apierr.BrokerUnavailable {
		t.Fatalf("Open after Close: %v, want broker_unavailable", aerr)
	}
	waitConsumers(t, b.JS, 0)
}

// TestOpenWithoutBroker: with the broker gone a stream is refused at once
// with 503 broker_unavailable and a Retry-After (before any 200), and the
// refusal leaves no stream counted open.
func TestOpenWithoutBroker(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	b.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, aerr := f.Open(ctx, chanID(1), 0)
	if aerr == nil {
		s.Close()
		t.Fatal("stream admitted without a broker")
	}
	if aerr.Code != apierr.BrokerUnavailable || aerr.Status() != 503 || aerr.RetryAfter <= 0 {
		t.Fatalf("refusal %v (status %d, Retry-After %d), want 503 broker_unavailable with Retry-After", aerr, aerr.Status(), aerr.RetryAfter)
	}
	if open := metric(t, f, "pushgo_streams_open"); open != 0 {
		t.Fatalf("pushgo_streams_open %v after a refusal", open)
	}
}
