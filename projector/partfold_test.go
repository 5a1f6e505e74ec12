package projector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// The partitioned fold (partfold.go) must leave exactly what the
// sequential fold leaves (Fold, one operation after the other, committed
// in batches of any size), whatever its partitions, its groups, the
// moments the log was read live, and the moments it was killed: these
// tests compare the whole store (every key and value, the history, the
// dead letters and the applied sequence included) byte for byte.

// logEntry is one entry appended to PUSHGO_OPS.
type logEntry struct {
	subject string
	data    []byte
}

// mixedLog generates n log entries over three channels exercising every
// index the fold keeps: events linked to things and relinked, deadlines
// set, moved and cleared, closes; things typed, named, related, archived,
// reactivated and deleted, with external ids; messages; nested attrs
// merges; op_ids used twice in a channel by different entities (as a
// client may past the deduplication window); and entries that cannot be
// folded (not JSON, the wrong subject, an unknown operation, a payload of
// the wrong type).
func mixedLog(rng *rand.Rand, n int) []logEntry {
	channels := []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "7VNDECTMTAYVFHY2G194E2AY8Z", "0NQZ1DGDK3BP9E4E6BFK8SQEVR"}
	type ent struct {
		kind   ops.Kind
		ch, id string
		ended  bool
	}
	var ents []*ent
	var things []*ent
	usedOpIDs := map[string][]string{} // channel → op_ids used
	out := make([]logEntry, 0, n)
	types := []string{"HOST", "SERVICE", "PROCESS_GROUP"}
	for i := 0; len(out) < n; i++ {
		now := int64(1713750000000 + i*1000)
		ch := channels[rng.IntN(len(channels))]
		opID := fmt.Sprintf("op%06d", i)
		var env ops.Envelope
		var payload any
		attrs := fmt.Sprintf(`{"v":%d,"n":{"a":%d,"b":null,"c":"x%d"},"gone":null}`, i, rng.IntN(5), i%4)
		switch r := rng.IntN(100); {
		case r < 3: // cannot be folded
			var e logEntry
			switch rng.IntN(5) {
			case 0:
				e = logEntry{streams.OpSubject(ch, ops.KindEvent, "broken"), []byte(`{"v":1,"op":`)}
			case 4: // only a message may be on a channel's messages subject
				data, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.EventCreate, ChannelID: ch, OpID: opID, EntityID: "e" + opID, AcceptedAt: now,
					Payload: []byte(`{"event_id":"e","title":"t","status":"s","message":"m","severity":"low","event_time":1}`)})
				e = logEntry{streams.MessagesSubject(ch), data}
			case 1:
				data, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: opID, EntityID: "m" + opID, AcceptedAt: now,
					Payload: []byte(`{"message_id":"x","title":"t","severity":"low","occurred_at":1}`)})
				e = logEntry{streams.OpSubject(ch, ops.KindMessage, "elsewhere"), data}
			case 2:
				data, _ := json.Marshal(ops.Envelope{V: 1, Op: "event.explode", ChannelID: ch, OpID: opID, EntityID: "e" + opID, AcceptedAt: now, Payload: []byte(`{}`)})
				e = logEntry{streams.OpSubject(ch, ops.KindEvent, "e"+opID), data}
			default:
				data, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.EventCreate, ChannelID: ch, OpID: opID, EntityID: "e" + opID, AcceptedAt: now,
					Payload: []byte(`{"event_id":"e","event_time":"yesterday"}`)})
				e = logEntry{streams.OpSubject(ch, ops.KindEvent, "e"+opID), data}
			}
			out = append(out, e)
			continue
		case r < 15 || len(ents) < 4: // create
			if rng.IntN(2) == 0 {
				e := &ent{kind: ops.KindEvent, ch: ch, id: "ev" + opID}
				ents = append(ents, e)
				p := ops.EventPayload{EventID: e.id, Title: "t" + opID, Status: "open", Message: "m", Severity: "high", EventTime: now,
					StartedAt: &now, Attrs: []byte(attrs), Tags: []string{"a", "b"}}
				if len(things) > 0 && rng.IntN(2) == 0 {
					p.ThingID = things[rng.IntN(len(things))].id
				}
				if rng.IntN(3) == 0 {
					d := now + int64(rng.IntN(100000))
					p.Deadline = &d
				}
				env, payload = ops.Envelope{Op: ops.EventCreate, EntityID: e.id}, p
			} else {
				e := &ent{kind: ops.KindThing, ch: ch, id: "th" + opID}
				ents, things = append(ents, e), append(things, e)
				serial := "SN" + opID
				thAttrs := fmt.Sprintf(`{"type":%q,"relationships":{"runsOn":"th%06d, th%06d","calls":"bad id!"},"load":%d}`,
					types[rng.IntN(len(types))], rng.IntN(i+1), rng.IntN(i+1), i)
				env, payload = ops.Envelope{Op: ops.ThingCreate, EntityID: e.id}, ops.ThingPayload{ThingID: e.id, Title: "Thing " + opID,
					ObservedAt: now, CreatedAt: &now, Attrs: []byte(thAttrs), ExternalIDs: map[string]*string{"serial": &serial}}
			}
		case r < 25: // message
			env = ops.Envelope{Op: ops.MessageCreate, EntityID: "msg" + opID}
			payload = ops.MessagePayload{MessageID: env.EntityID, Title: "hello", Severity: "low", OccurredAt: now}
		default: // update an entity
			e := ents[rng.IntN(len(ents))]
			if e.ended && e.kind == ops.KindEvent {
				continue
			}
			ch = e.ch
			if e.kind == ops.KindEvent {
				op := ops.EventUpdate
				if rng.IntN(6) == 0 {
					op, e.ended = ops.EventClose, true
				}
				p := ops.EventPayload{EventID: e.id, Status: "s", Message: fmt.Sprint(i), Severity: "normal", EventTime: now, Attrs: []byte(attrs)}
				switch rng.IntN(5) {
				case 0:
					if len(things) > 0 {
						p.ThingID = things[rng.IntN(len(things))].id
					}
				case 1:
					d := now + int64(rng.IntN(100000))
					p.Deadline = &d
				case 2:
					p.Title, p.Tags, p.Metadata = "retitled", []string{}, []byte(`{"k": "v \u00e9"}`)
				}
				env, payload = ops.Envelope{Op: op, EntityID: e.id}, p
			} else {
				op := []ops.Name{ops.ThingUpdate, ops.ThingUpdate, ops.ThingUpdate, ops.ThingArchive, ops.ThingDelete}[rng.IntN(5)]
				p := ops.ThingPayload{ThingID: e.id, ObservedAt: now, Attrs: []byte(attrs), ExternalIDs: map[string]*string{"serial": nil}}
				switch rng.IntN(4) {
				case 0:
					p.Title = "Renamed " + opID
				case 1:
					p.Attrs = []byte(fmt.Sprintf(`{"type":%q,"relationships":null}`, types[rng.IntN(len(types))]))
				}
				env, payload = ops.Envelope{Op: op, EntityID: e.id}, p
			}
			if prev := usedOpIDs[ch]; len(prev) > 0 && rng.IntN(10) == 0 {
				opID = prev[rng.IntN(len(prev))] // an op_id this channel used before
			}
		}
		env.V, env.ChannelID, env.OpID, env.AcceptedAt = 1, ch, opID, now+7
		env.Payload, _ = json.Marshal(payload, json.Deterministic(true))
		data, _ := json.Marshal(env)
		subject := streams.OpSubject(ch, env.Op.Kind(), env.EntityID)
		if env.Op == ops.MessageCreate && rng.IntN(2) == 0 {
			subject = streams.MessagesSubject(ch) // as ingest appends those with a generated op_id
		}
		out = append(out, logEntry{subject, data})
		usedOpIDs[ch] = append(usedOpIDs[ch], opID)
	}
	return out
}

// appendLog publishes the entries, in order, and returns the last
// sequence. The publishes are pipelined, a window at a time (one
// connection keeps their order; the window stays under the client's limit
// of pending asynchronous publishes, past which it refuses one): a log of
// thousands of entries would otherwise take seconds of round trips under
// the race detector.
func appendLog(t *testing.T, js jetstream.JetStream, log []logEntry) uint64 {
	t.Helper()
	const window = 256
	var last uint64
	acks := make([]jetstream.PubAckFuture, 0, window)
	for start := 0; start < len(log); start += window {
		acks = acks[:0]
		for _, e := range log[start:min(start+window, len(log))] {
			f, err := js.PublishAsync(e.subject, e.data)
			if err != nil {
				t.Fatal(err)
			}
			acks = append(acks, f)
		}
		for i, f := range acks {
			select {
			case ack := <-f.Ok():
				if ack.Sequence <= last {
					t.Fatalf("entry %d appended at %d, after %d", start+i, ack.Sequence, last)
				}
				last = ack.Sequence
			case err := <-f.Err():
				t.Fatalf("entry %d: %v", start+i, err)
			case <-time.After(time.Minute):
				t.Fatalf("entry %d: no answer in a minute", start+i)
			}
		}
	}
	return last
}

// sequentialFold folds the log's first upTo entries into a new store in
// dir the simple way (referenceFold) and returns the store's raw contents.
func sequentialFold(t *testing.T, js jetstream.JetStream, dir string, upTo uint64, rng *rand.Rand) []byte {
	t.Helper()
	r := newReferenceFold(t, js, dir, rng)
	defer r.close(t)
	return r.foldTo(t, upTo)
}

// referenceFold is the sequential fold the partitioned one is compared
// with: one operation after the other into a batch, committed every few
// operations (at random) and at every point it is asked for, dead letters
// as the fold sets them aside. It goes on from where it stopped, so a test
// that compares several points of one log folds the log once; what it
// holds after foldTo(n) is what a new store holds after folding the first
// n entries (each commit is the same atomic batch either way).
type referenceFold struct {
	st     *store.Store
	stream jetstream.Stream
	rng    *rand.Rand
	batch  *store.Batch
	next   uint64 // the next sequence to fold
}

func newReferenceFold(t *testing.T, js jetstream.JetStream, dir string, rng *rand.Rand) *referenceFold {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	return &referenceFold{st: st, stream: s, rng: rng, batch: st.NewBatch(), next: 1}
}

// foldTo folds up to sequence upTo (at least the one folded last) and
// returns the store's raw contents.
func (r *referenceFold) foldTo(t *testing.T, upTo uint64) []byte {
	t.Helper()
	if upTo+1 < r.next {
		t.Fatalf("reference fold: asked for %d after folding %d", upTo, r.next-1)
	}
	if r.next > upTo {
		return rawContents(t, r.st)
	}
	// The entries, read in one pass of an ordered consumer (one request
	// per entry took seconds for a long log under the race detector).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := r.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.next})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	for ; r.next <= upTo; r.next++ {
		seq := r.next
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if md, err := m.Metadata(); err != nil || md.Sequence.Stream != seq {
			t.Fatalf("reference fold: read %v (%v), want sequence %d", md, err, seq)
		}
		err = applyEntry(r.batch, foldItem{seq: seq, subject: m.Subject(), data: m.Data()})
		var bad *entryError
		switch {
		case errors.As(err, &bad):
			r.batch.PutDeadLetter(store.DeadLetter{Stream: streams.Ops, Seq: seq, Subject: m.Subject(), Reason: bad.reason})
		case err != nil:
			t.Fatalf("seq %d: %v", seq, err)
		}
		if r.rng.IntN(40) == 0 || seq == upTo {
			if err := r.batch.Commit(seq); err != nil {
				t.Fatal(err)
			}
			r.batch = r.st.NewBatch()
		}
	}
	return rawContents(t, r.st)
}

func (r *referenceFold) close(t *testing.T) {
	t.Helper()
	if err := r.st.Close(); err != nil {
		t.Error(err)
	}
}

// rawContents is every key and value of a store, one per line.
func rawContents(t *testing.T, st *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	var line []byte
	if err := st.Raw(func(k, v []byte) error {
		if bytes.HasPrefix(k, []byte("m\x00log\x00")) {
			// Which logs the projector opened the store for (heal.go,
			// sameLogs), not the fold's state: a sequential fold run
			// without a projector records none.
			return nil
		}
		// fmt's %q=%q, without fmt's cost: a store of 30,000 operations
		// took seconds to print under the race detector.
		line = strconv.AppendQuote(line[:0], string(k))
		line = append(line, '=')
		line = strconv.AppendQuote(line, string(v))
		buf.Write(append(line, '\n'))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storeContents opens the store in dir (as after a crash: Pebble replays
// its log) and returns its applied sequence and raw contents.
func storeContents(t *testing.T, dir string) (uint64, []byte) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	applied, err := st.Applied()
	if err != nil {
		t.Fatal(err)
	}
	return applied, rawContents(t, st)
}

// firstDifference describes where two stores' contents part.
func firstDifference(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("line %d:\n  %.300s\nvs\n  %.300s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestPartitionedFoldEqualsSequential: projectors with 1 to 7 partitions
// and groups of 1 to 10,000 operations, folding a randomized log while it
// is written (and started again half-way), leave stores byte-identical to
// the sequential fold of the same log.
func TestPartitionedFoldEqualsSequential(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			b := brokertest.Start(t)
			rng := rand.New(rand.NewPCG(seed, 99))
			log := mixedLog(rng, 2500)
			type run struct {
				cfg Config
				p   *Projector
			}
			var runs []*run
			for _, c := range []struct{ parts, batch int }{{1, 10_000}, {2, 1}, {3, 13}, {4, 500}, {7, 10_000}} {
				cfg := Config{Dir: t.TempDir(), FoldPartitions: c.parts, BatchSize: c.batch, Logger: quietLogger()}
				p, err := Start(context.Background(), b.NC, cfg)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, &run{cfg: cfg, p: p})
			}
			half := appendLog(t, b.JS, log[:len(log)/2])
			// Start every projector again on its store half-way.
			for _, r := range runs {
				waitFor(t, r.p, half/2)
				if err := r.p.Close(); err != nil {
					t.Fatal(err)
				}
				p, err := Start(context.Background(), b.NC, r.cfg)
				if err != nil {
					t.Fatal(err)
				}
				r.p = p
			}
			last := appendLog(t, b.JS, log[len(log)/2:])
			want := sequentialFold(t, b.JS, t.TempDir(), last, rng)
			if !bytes.Contains(want, []byte(`"z\x00`)) {
				t.Fatal("the log has no entry the fold sets aside: the generator is wrong")
			}
			for _, r := range runs {
				waitFor(t, r.p, last)
				if err := r.p.Close(); err != nil {
					t.Fatal(err)
				}
				applied, got := storeContents(t, r.cfg.Dir)
				if applied != last {
					t.Fatalf("%d partitions, groups of %d: applied %d, want %d", r.cfg.FoldPartitions, r.cfg.BatchSize, applied, last)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%d partitions, groups of %d: the store differs from the sequential fold's at %s",
						r.cfg.FoldPartitions, r.cfg.BatchSize, firstDifference(got, want))
				}
			}
		})
	}
}

func waitFor(t *testing.T, p *Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitApplied(ctx, seq); err != nil {
		t.Fatalf("applied %d, want %d: %v", p.Applied(), seq, err)
	}
}

// TestMain runs this test binary as a projector process for
// TestFoldSIGKILLedAnywhere when asked to (foldChildEnv).
func TestMain(m *testing.M) {
	if os.Getenv(foldChildEnv) != "" {
		os.Exit(foldChild())
	}
	os.Exit(m.Run())
}

const foldChildEnv = "PUSHGO_TEST_FOLD_CHILD"

// foldChild is a projector process: it folds the log of the broker at
// PUSHGO_TEST_NATS_URL into PUSHGO_TEST_DIR, printing "applied <seq>" each
// time the applied sequence moves, until it is killed.
func foldChild() int {
	opt, err := nats.NkeyOptionFromSeed(os.Getenv("PUSHGO_TEST_NATS_CREDS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	nc, err := nats.Connect(os.Getenv("PUSHGO_TEST_NATS_URL"), opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	parts, _ := strconv.Atoi(os.Getenv("PUSHGO_TEST_PARTS"))
	batch, _ := strconv.Atoi(os.Getenv("PUSHGO_TEST_BATCH"))
	ctx := context.Background()
	p, err := Start(ctx, nc, Config{Dir: os.Getenv("PUSHGO_TEST_DIR"), FoldPartitions: parts, BatchSize: batch, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// SIGTERM stops it cleanly (Close writes what it committed).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		if err := p.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}()
	go func() { // for a dump: where the fold is
		for range time.Tick(5 * time.Second) {
			fmt.Fprintf(os.Stderr, "applied %d lag %d\n", p.Applied(), p.Lag())
		}
	}()
	for {
		applied := p.Applied() // printed, then waited past: none is missed
		fmt.Printf("applied %d\n", applied)
		if err := p.WaitApplied(ctx, applied+1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
}

// TestFoldSIGKILLedAnywhere kills a projector process with SIGKILL at
// random points of its fold of a randomized log (with 3 partitions and
// small groups, so a kill lands mid-group), five times, and starts it
// again each time. After each kill the store it left holds exactly what
// the sequential fold of the operations up to its applied sequence holds
// (every effect of every operation the watermark covers, none of a later
// one); in the end (stopped cleanly), what the sequential fold of the
// whole log holds. (The
// last groups the process committed before the kill may be missing: Pebble
// writes its log to the file system after the commit returns, and the
// fold resumes after the watermark that was written.)
func TestFoldSIGKILLedAnywhere(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	// 12,000 operations: about 120 groups of 97 for a kill to land in, and
	// under the race detector 19 s instead of 44 s at 30,000 (make test's
	// ten minutes), the same six runs and assertions.
	last := appendLog(t, b.JS, mixedLog(rng, 12_000))
	dir := filepath.Join(t.TempDir(), "projection")
	env := append(os.Environ(), foldChildEnv+"=1", "PUSHGO_TEST_NATS_URL="+b.ClientURL(),
		"PUSHGO_TEST_NATS_CREDS="+b.CredentialsFile(broker.RoleProjector), "PUSHGO_TEST_DIR="+dir,
		"PUSHGO_TEST_PARTS=3", "PUSHGO_TEST_BATCH=97")
	// One reference fold, taken further at each kill: the applied
	// sequences only grow (checked below).
	ref := newReferenceFold(t, b.JS, t.TempDir(), rng)
	defer ref.close(t)
	midway := 0
	var from uint64 // applied when the child starts
	for kill := 0; ; kill++ {
		final := kill == 5
		target := last
		if !final {
			target = from + 1 + rng.Uint64N(min(last-from-1, last/4))
		}
		reached := runChildUntil(t, env, target, time.Duration(rng.IntN(3000))*time.Microsecond, final)
		applied, got := storeContents(t, dir)
		t.Logf("kill %d: the child reported %d (target %d); the store holds applied %d of %d", kill+1, reached, target, applied, last)
		if applied < from {
			t.Fatalf("kill %d: the store holds applied %d, below the %d it held before this run", kill+1, applied, from)
		}
		want := ref.foldTo(t, applied)
		if applied == 0 && len(got) == 0 {
			// Killed before Pebble's log of the store's first commits
			// reached the file system: nothing at all, not even the
			// layout the store records when created, which its next open
			// writes (a store of no operation, as the watermark 0 says).
			want = nil
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("kill %d at applied %d: the store differs from the sequential fold of the first %d operations at %s",
				kill+1, applied, applied, firstDifference(got, want))
		}
		if applied > 0 && applied < last {
			midway++
		}
		from = applied
		if final {
			if applied != last {
				t.Fatalf("the last run stopped at %d of %d", applied, last)
			}
			break
		}
	}
	if midway == 0 {
		t.Fatal("no kill landed in the middle of the fold: the test did not test a crash")
	}
}

// runChildUntil starts the projector process, waits until it reports an
// applied sequence of at least target, lets it run for delay more and
// kills it with SIGKILL (with clean, stops it with SIGTERM). It returns
// the last applied sequence it reported.
func runChildUntil(t *testing.T, env []string, target uint64, delay time.Duration, clean bool) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	var reported uint64
	sc := bufio.NewScanner(out)
	// A child that does not get there is dumped (SIGQUIT: its goroutines
	// on stderr), then killed.
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Signal(syscall.SIGQUIT) })
	defer deadline.Stop()
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "applied ")
		if !ok {
			continue
		}
		if reported, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("child: %q", sc.Text())
		}
		if reported >= target {
			time.Sleep(delay)
			sig := syscall.SIGKILL
			if clean {
				sig = syscall.SIGTERM
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); clean && err != nil {
				t.Fatalf("the projector process did not stop cleanly: %v: %s", err, stderr.String())
			}
			return reported
		}
	}
	_ = cmd.Wait()
	t.Fatalf("the projector process ended before applying %d (reported %d): %s", target, reported, stderr.String())
	return 0
}

// TestCatchingUpCommitsFullGroups: a projector started behind a backlog
// (a rebuild) commits groups of its batch size while it catches up, not
// one each time the client's delivery ran dry (91 operations on average in
// a million-operation rebuild, each group encoding the snapshots it
// touched again); the store is the sequential fold's all the same.
func TestCatchingUpCommitsFullGroups(t *testing.T) {
	const n, batch = 6000, 1000
	b := brokertest.Start(t)
	rng := rand.New(rand.NewPCG(3, 99))
	last := appendLog(t, b.JS, mixedLog(rng, n))
	if last%batch != 0 {
		t.Fatalf("the log ends at %d, not at a whole number of groups of %d", last, batch)
	}
	// The delays long, so that every group is cut when full, however slow
	// the machine: while catching up, and for the tail (no read waits).
	cfg := Config{Dir: t.TempDir(), FoldPartitions: 2, BatchSize: batch, Logger: quietLogger(),
		CatchUpDelay: time.Minute, MaxBatchDelay: time.Minute}
	p, err := Start(context.Background(), b.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Polled, not WaitApplied: a waiting read would hurry the tail's groups.
	pollUntil(t, "the whole log applied", func() bool { return p.Applied() == last })
	groups := p.groups.Load()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if want := last / batch; groups != want {
		t.Errorf("%d operations in %d groups, want %d full groups of %d", last, groups, want, batch)
	}
	t.Logf("%d operations in %d groups", last, groups)
	want := sequentialFold(t, b.JS, t.TempDir(), last, rng)
	if applied, got := storeContents(t, cfg.Dir); applied != last || !bytes.Equal(got, want) {
		t.Fatalf("applied %d of %d; the store differs from the sequential fold's at %s", applied, last, firstDifference(got, want))
	}
}

// TestLiveFoldBatchesUntilAReadWaits: operations appended one by one while
// no read waits are committed together (within MaxBatchDelay, here an
// hour), not one group each; a read waiting on its barrier (WaitApplied)
// has what the fold holds committed at once.
func TestLiveFoldBatchesUntilAReadWaits(t *testing.T) {
	b := brokertest.Start(t)
	rng := rand.New(rand.NewPCG(4, 99))
	cfg := Config{Dir: t.TempDir(), MaxBatchDelay: time.Hour, Logger: quietLogger()}
	p, err := Start(context.Background(), b.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var last uint64
	for _, e := range mixedLog(rng, 200) {
		ack, err := b.JS.Publish(context.Background(), e.subject, e.data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	pollUntil(t, "every operation dealt to the fold", func() bool { return p.dealt.Load() == last })
	if applied := p.Applied(); applied != 0 {
		t.Errorf("applied %d with no read waiting and MaxBatchDelay an hour: operations were committed on their own", applied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitApplied(ctx, last); err != nil {
		t.Fatalf("a read waiting for %d: %v (applied %d): the fold did not commit for it", last, err, p.Applied())
	}
	if groups := p.groups.Load(); groups != 1 {
		t.Errorf("%d operations appended one by one committed in %d groups, want 1", last, groups)
	}
	// A read that comes after the fold was handed its operation (in some
	// of these rounds; in the others the operation comes after the read)
	// has it committed at once, not after the hour.
	for i, e := range mixedLog(rng, 30) {
		ack, err := b.JS.Publish(context.Background(), e.subject, e.data)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = p.WaitApplied(ctx, ack.Sequence)
		cancel()
		if err != nil {
			t.Fatalf("round %d: a read waiting for %d: %v (applied %d)", i, ack.Sequence, err, p.Applied())
		}
	}
}

// pollUntil polls cond every 10 ms until it holds, for at most a minute.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
	}
}
