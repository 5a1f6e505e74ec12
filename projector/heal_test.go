package projector_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

const healCh = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

// metric reads a projector metric (a counter or a gauge) with the label
// stream=stream ("" for none).
func metric(t *testing.T, p *projector.Projector, name, stream string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := stream == ""
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == "stream" && l.GetValue() == stream)
			}
			if !ok {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{stream=%q}", name, stream)
	return 0
}

func publish(t *testing.T, js jetstream.JetStream, subject string, data []byte) uint64 {
	t.Helper()
	ack, err := js.Publish(context.Background(), subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// waitFolded waits until the fold has committed seq, failing at once if
// the projector stops.
func waitFolded(t *testing.T, p *projector.Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitApplied(ctx, seq); err != nil {
		t.Fatalf("applied %d, want %d: %v (projector error: %v)", p.Applied(), seq, err, p.Err())
	}
}

func waitReceipts(t *testing.T, p *projector.Projector, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); p.ReceiptsApplied() < seq; time.Sleep(5 * time.Millisecond) {
		if err := p.Err(); err != nil || time.Now().After(deadline) {
			t.Fatalf("receipts applied %d, want %d (projector error: %v)", p.ReceiptsApplied(), seq, err)
		}
	}
}

func envelope(t *testing.T, env ops.Envelope, payload any) []byte {
	t.Helper()
	var err error
	if env.Payload == nil {
		if env.Payload, err = json.Marshal(payload); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// historyItems counts the operations in the history of the workload's
// channels.
func historyItems(t *testing.T, p *projector.Projector) int {
	t.Helper()
	n := 0
	for _, ch := range []string{healCh, "7VNDECTMTAYVFHY2G194E2AY8Z"} {
		for after := uint64(0); ; {
			data, aerr := p.Read(&reads.Request{Route: reads.ChannelHistory, ChannelID: ch, After: after, Limit: reads.MaxLimit})
			if aerr != nil {
				t.Fatal(aerr)
			}
			var page reads.HistoryData
			if err := json.Unmarshal(data, &page); err != nil {
				t.Fatal(err)
			}
			n += len(page.Items)
			if !page.HasMore {
				break
			}
			after = page.NextAfter
		}
	}
	return n
}

// TestPoisonedLogIsSetAside: entries of PUSHGO_OPS and PUSHGO_RECEIPTS
// that cannot be folded (bytes that are not JSON, a newer envelope
// version, an unknown operation, an envelope on another entity's subject
// or an event on the channel's messages subject, a payload the fold
// refuses, an unknown receipt) are set aside as dead letters (listed with
// sequence and reason, counted in metrics) while the fold goes on: every
// valid operation around them is folded, the projector stays ready, and a
// restart or a rebuild does the same. Before, the first of them stopped the
// fold for good.
func TestPoisonedLogIsSetAside(t *testing.T) {
	nc, js := setup(t)
	dir := t.TempDir()
	p := start(t, nc, projector.Config{Dir: dir, Serve: true})
	rng := rand.New(rand.NewPCG(7, 8))
	workload(t, js, rng, 30)

	ev := ops.EventPayload{EventID: "ev-ok", Title: "t", Status: "s", Message: "m", Severity: "low", EventTime: 1713750000000}
	good := ops.Envelope{V: 1, Op: ops.EventCreate, ChannelID: healCh, OpID: "op-good", EntityID: "ev-ok", AcceptedAt: 1713750000000}
	subject := streams.OpSubject(healCh, ops.KindEvent, "ev-ok")
	newer, unknown, badIDs := good, good, good
	newer.V = 99
	unknown.Op = "event.explode"
	badIDs.ChannelID = "not a channel"
	badPayload := good
	badPayload.Payload = []byte(`{"event_id":"ev-ok","attrs":[1,2,3]}`)
	poison := []struct {
		subject string
		data    []byte
		reason  string
	}{
		{streams.OpSubject(healCh, ops.KindThing, "broken"), []byte("not json"), "envelope"},
		{subject, envelope(t, newer, ev), "version 99"},
		{subject, envelope(t, unknown, ev), "unknown operation"},
		{subject, envelope(t, badIDs, ev), "channel_id"},
		{streams.OpSubject(healCh, ops.KindEvent, "someone-else"), envelope(t, good, ev), "subject"},
		{streams.MessagesSubject(healCh), envelope(t, good, ev), "subject"}, // only messages share a subject
		{subject, envelope(t, badPayload, nil), "attrs"},
	}
	var deadSeqs []uint64
	for _, e := range poison {
		deadSeqs = append(deadSeqs, publish(t, js, e.subject, e.data))
	}
	publish(t, js, subject, envelope(t, good, ev)) // the event, after all
	last := workload(t, js, rng, 30)
	waitFolded(t, p, last)
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready after setting entries aside: %v", err)
	}
	if snap, aerr := p.Read(&reads.Request{Route: reads.EventGet, ChannelID: healCh, EventID: "ev-ok"}); aerr != nil || !strings.Contains(string(snap), `"title":"t"`) {
		t.Fatalf("the valid event after the poison: %s %v", snap, aerr)
	}
	if n := historyItems(t, p); n != 61 {
		t.Fatalf("history holds %d operations, want the 61 valid ones", n)
	}

	// A receipt that is not JSON and one of an unknown kind, then a good one.
	deadSeqs = append(deadSeqs, publish(t, js, streams.ReceiptSubject(healCh), []byte("{oops")))
	bad, _ := json.Marshal(delivery.Receipt{Kind: "exploded", ChannelID: healCh, OpID: "op-good"})
	deadSeqs = append(deadSeqs, publish(t, js, streams.ReceiptSubject(healCh), bad))
	okReceipt, _ := json.Marshal(delivery.Receipt{Kind: delivery.KindExpanded, ChannelID: healCh, OpID: "op-good", Seq: deadSeqs[len(poison)-1] + 1,
		EntityType: ops.KindEvent, EntityID: "ev-ok", Tasks: 2})
	waitReceipts(t, p, publish(t, js, streams.ReceiptSubject(healCh), okReceipt))

	items, total, err := p.DeadLetters(100)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(deadSeqs) || len(items) != len(deadSeqs) {
		t.Fatalf("%d dead letters (%d listed), want %d: %+v", total, len(items), len(deadSeqs), items)
	}
	for i, d := range items {
		wantStream, wantReason := streams.Ops, "receipt"
		if i < len(poison) {
			wantStream, wantReason = streams.Ops, poison[i].reason
		} else {
			wantStream = streams.Receipts
		}
		if d.Stream != wantStream || d.Seq != deadSeqs[i] || !strings.Contains(d.Reason, wantReason) {
			t.Errorf("dead letter %d: %+v, want %s seq %d with a reason about %q", i, d, wantStream, deadSeqs[i], wantReason)
		}
	}
	for _, m := range []string{"pushgo_projector_dead_letters", "pushgo_projector_dead_letters_total"} {
		if got := metric(t, p, m, streams.Ops); got != float64(len(poison)) {
			t.Errorf("%s{stream=PUSHGO_OPS} = %v, want %d", m, got, len(poison))
		}
		if got := metric(t, p, m, streams.Receipts); got != 2 {
			t.Errorf("%s{stream=PUSHGO_RECEIPTS} = %v, want 2", m, got)
		}
	}
	want := dump(t, p.Store())

	// A restart resumes after them; the projection still lists them.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = start(t, nc, projector.Config{Dir: dir, Serve: true})
	last = workload(t, js, rng, 5)
	waitFolded(t, p, last)
	if got := metric(t, p, "pushgo_projector_dead_letters", streams.Ops); got != float64(len(poison)) {
		t.Errorf("after a restart: %v dead letters of PUSHGO_OPS held, want %d", got, len(poison))
	}
	if p.Rebuilds() != 0 {
		t.Errorf("a restart rebuilt the projection %d times", p.Rebuilds())
	}
	// A rebuild and a second replica fold the same log to the same state,
	// dead letters included.
	_ = p.Close()
	rebuilt := start(t, nc, projector.Config{Dir: dir, Rebuild: true})
	replica := start(t, nc, projector.Config{InMemory: true})
	waitFolded(t, rebuilt, last)
	waitFolded(t, replica, last)
	waitReceipts(t, rebuilt, 3)
	waitReceipts(t, replica, 3)
	if a, b := dump(t, rebuilt.Store()), dump(t, replica.Store()); !bytes.Equal(a, b) || !bytes.Contains(a, want[bytes.Index(want, []byte(`"z\x00`)):]) {
		t.Fatalf("a rebuild and a replica differ, or lost the dead letters (%d vs %d bytes)", len(a), len(b))
	}
}

// TestDeadLetterThisVersionFoldsIsFoldedAgain: a projection that holds a
// dead letter whose entry this version folds (set aside by an older
// version: an operation of a newer format, before an upgrade) is folded
// again at start, so the operation is not skipped for good.
func TestDeadLetterThisVersionFoldsIsFoldedAgain(t *testing.T) {
	nc, js := setup(t)
	dir := t.TempDir()
	p := start(t, nc, projector.Config{Dir: dir})
	last := workload(t, js, rand.New(rand.NewPCG(9, 10)), 50)
	waitFolded(t, p, last)
	want := dump(t, p.Store())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older version would have left: operation 20 set aside.
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	b.PutDeadLetter(store.DeadLetter{Stream: streams.Ops, Seq: 20, Subject: "pushgo.op.x", Reason: "envelope version 2 not supported (max 1)"})
	if err := b.Commit(last); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	p = start(t, nc, projector.Config{Dir: dir})
	waitFolded(t, p, last)
	if p.Rebuilds() != 1 {
		t.Fatalf("rebuilds at start: %d, want 1", p.Rebuilds())
	}
	if got := dump(t, p.Store()); !bytes.Equal(got, want) {
		t.Fatalf("after folding it again the projection differs from the one that never skipped it (%d vs %d bytes)", len(got), len(want))
	}
}

// corrupt flips the bytes of every table of the Pebble store in dir from
// from to to (fractions of each file's size), in place.
func corrupt(t *testing.T, dir string, from, to float64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no table in %s: %v", dir, err)
	}
	for _, name := range files {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := int64(float64(fi.Size())*from), int64(float64(fi.Size())*to)
		buf := make([]byte, hi-lo)
		if _, err := f.ReadAt(buf, lo); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] ^= 0x5a
		}
		if _, err := f.WriteAt(buf, lo); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptProjectionAtStartIsRebuilt: a projection whose files are
// corrupt is deleted and folded again from the log at start, to the same
// state as a fresh replica's. Before, Pebble's report of the corruption
// panicked and took the process down.
func TestCorruptProjectionAtStartIsRebuilt(t *testing.T) {
	nc, js := setup(t)
	dir := t.TempDir()
	p := start(t, nc, projector.Config{Dir: dir})
	last := workload(t, js, rand.New(rand.NewPCG(11, 12)), 1500)
	waitFolded(t, p, last)
	if err := p.Close(); err != nil { // flushes the projection to tables
		t.Fatal(err)
	}
	corrupt(t, dir, 0, 0.97) // all but the footer: the first read fails

	p = start(t, nc, projector.Config{Dir: dir, Serve: true})
	replica := start(t, nc, projector.Config{InMemory: true})
	waitFolded(t, p, last)
	waitFolded(t, replica, last)
	if p.Rebuilds() != 1 {
		t.Errorf("rebuilds: %d, want 1", p.Rebuilds())
	}
	if a, b := dump(t, p.Store()), dump(t, replica.Store()); !bytes.Equal(a, b) {
		t.Fatalf("the rebuilt projection differs from a replica's (%d vs %d bytes)", len(a), len(b))
	}
}

// TestCorruptProjectionAtRuntimeIsRebuilt: a read that meets a corrupt
// block answers 503 read_unavailable (not a crash, not a 500), and the
// projector rebuilds the projection from the log by itself: the same read
// soon answers what a fresh replica answers, and the projector never
// stopped. Before, Pebble's report of the corruption panicked in the read
// and took the process down.
func TestCorruptProjectionAtRuntimeIsRebuilt(t *testing.T) {
	nc, js := setup(t)
	dir := t.TempDir()
	p := start(t, nc, projector.Config{Dir: dir})
	last := workload(t, js, rand.New(rand.NewPCG(13, 14)), 1500)
	waitFolded(t, p, last)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the projector has read the end of its table (positions,
	// dead letters) but not its beginning: the state indexes.
	p = start(t, nc, projector.Config{Dir: dir, Serve: true})
	if p.Rebuilds() != 0 {
		t.Fatalf("rebuilt at start: %d", p.Rebuilds())
	}
	corrupt(t, dir, 0, 0.10)

	ask := func(nc *nats.Conn) (reads.Response, error) {
		req, _ := json.Marshal(reads.Request{Route: reads.ChannelEvents, ChannelID: healCh, State: ops.EventOngoing, Limit: 200, MinSeq: last})
		m, err := nc.Request(reads.Subject(reads.ChannelEvents), req, 5*time.Second)
		if err != nil {
			return reads.Response{}, err
		}
		var r reads.Response
		return r, json.Unmarshal(m.Data, &r)
	}
	r, err := ask(nc)
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorCode != "read_unavailable" {
		t.Fatalf("read of a corrupt block: %+v, want read_unavailable", r)
	}
	// The answer a projection that was never corrupt gives.
	replica := start(t, nc, projector.Config{InMemory: true})
	waitFolded(t, replica, last)
	want, aerr := replica.Read(&reads.Request{Route: reads.ChannelEvents, ChannelID: healCh, State: ops.EventOngoing, Limit: 200})
	if aerr != nil {
		t.Fatal(aerr)
	}
	replica.Close() // answers over NATS only from the healed projector
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := p.Err(); err != nil {
			t.Fatalf("the projector stopped: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no good answer 30s after the corruption was found; last: %+v %v", r, err)
		}
		if r, err = ask(nc); err != nil || r.ErrorCode != "" {
			continue // rebuilding: no responder, or the fold catching up
		}
		if !bytes.Equal(r.Data, want) {
			t.Fatalf("after the rebuild:\n%s\nwant\n%s", r.Data, want)
		}
		break
	}
	if p.Rebuilds() != 1 || p.Ready() != nil {
		t.Fatalf("rebuilds %d, ready %v; want 1, nil", p.Rebuilds(), p.Ready())
	}
}

// TestAProjectionOfALogCreatedAgainIsRebuilt: PUSHGO_OPS deleted and
// created again (a broker wiped, its storage lost) under a projection
// folded from the old log: the projector, started again on that
// projection, folds it again from the new log. Kept, its positions named
// sequences the new log had not reached: it waited for them, and never
// folded what the new log held below them (the new log's events not
// found, the old log's answered).
func TestAProjectionOfALogCreatedAgainIsRebuilt(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	b := brokertest.Start(t)
	dir := t.TempDir()
	create := func(id string, i int) uint64 {
		env := ops.Envelope{V: 1, Op: ops.EventCreate, ChannelID: ch, OpID: fmt.Sprintf("op-%s", id), EntityID: id, AcceptedAt: int64(1713750000000 + i)}
		env.Payload, _ = json.Marshal(ops.EventPayload{EventID: id, Title: "t", Status: "open", Message: "m", Severity: ops.SeverityNormal, EventTime: env.AcceptedAt})
		return publishSelectOp(t, b.JS, ch, &env)
	}
	var last uint64
	for i := range 5 {
		last = create(fmt.Sprintf("old%d", i), i)
	}
	p := start(t, b.NC, projector.Config{Dir: dir})
	waitApplied(t, p, last)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	if err := b.JS.DeleteStream(ctx, streams.Ops); err != nil {
		t.Fatal(err)
	}
	if err := provision.Ensure(ctx, b.JS, streams.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		last = create(fmt.Sprintf("new%d", i), i)
	}
	p = start(t, b.NC, projector.Config{Dir: dir})
	waitApplied(t, p, last)
	for id, want := range map[string]bool{"new0": true, "new1": true, "old0": false, "old4": false} {
		_, aerr := p.Read(&reads.Request{Route: reads.EventGet, ChannelID: ch, EventID: id})
		if found := aerr == nil; found != want {
			t.Errorf("event %s after the log was created again: found %v (%v), want %v", id, found, aerr, want)
		}
	}
	if got := p.Applied(); got != last {
		t.Errorf("applied %d, want the new log's last sequence %d", got, last)
	}
}

// TestAProjectionAheadOfItsLogIsRebuilt: the broker's data directory
// restored from a backup (the streams keep their creation times) under a
// projection whose delivery receipts were folded past the backup's last
// one. Its receipts position names sequences the restored log gives
// again: the projector folds the projection again from the log at start
// (saying why), so a receipt appended after the restore counts in
// /send_status, and the lost ones do not. Before, the receipts fold
// resumed after its old position and skipped every new receipt up to it.
func TestAProjectionAheadOfItsLogIsRebuilt(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	ctx := context.Background()
	brokerDir, backup, dir := t.TempDir(), filepath.Join(t.TempDir(), "broker"), t.TempDir()
	open, b := brokerOver(t, brokerDir)
	summary := func(partition, sent, failed int) delivery.Receipt {
		return delivery.Receipt{Kind: delivery.KindSummary, At: 1713750001000, BatchID: fmt.Sprintf("b%d", partition),
			Summaries: []delivery.Summary{{ChannelID: ch, OpID: "op1", Seq: 1, EntityType: ops.KindMessage, EntityID: "m1",
				AcceptedAt: 1713750000007, At: 1713750001000, Partition: partition, Audience: 8, Sent: sent, Failed: failed}}}
	}

	nc, js := open()
	if err := provision.Ensure(ctx, js, streams.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(ops.MessagePayload{MessageID: "m1", Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
	env := envelope(t, ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "op1", EntityID: "m1", AcceptedAt: 1713750000007, Payload: payload}, nil)
	last := publish(t, js, streams.OpSubject(ch, ops.KindMessage, "m1"), env)
	p := start(t, nc, projector.Config{Dir: dir})
	waitFolded(t, p, last)
	publishReceipt(t, js, p, streams.SummariesSubject, summary(0, 1, 0))
	backedUp := p.ReceiptsApplied()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	(*b).Shutdown()
	copyDir(t, brokerDir, backup) // backed up

	nc, js = open()
	p = start(t, nc, projector.Config{Dir: dir})
	for part := 1; part <= 3; part++ { // lost with the restore
		publishReceipt(t, js, p, streams.SummariesSubject, summary(part, 1, 0))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	(*b).Shutdown()
	copyDir(t, backup, brokerDir) // the backup restored

	nc, js = open()
	var logs lockedLog
	p = start(t, nc, projector.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if p.Rebuilds() != 1 {
		t.Errorf("rebuilds at start on a restored log: %d, want 1", p.Rebuilds())
	}
	publishReceipt(t, js, p, streams.SummariesSubject, summary(4, 0, 1))
	if got := p.ReceiptsApplied(); got != backedUp+1 {
		t.Errorf("receipts applied %d after a receipt appended to the restored log, want its sequence %d", got, backedUp+1)
	}
	waitFolded(t, p, last) // the rebuilt ops fold: the read below does not wait for it
	replica := start(t, nc, projector.Config{InMemory: true})
	waitFolded(t, replica, last)
	waitReceipts(t, replica, backedUp+1)
	if got, want := sendStatus(t, p, "op1"), sendStatus(t, replica, "op1"); got != want {
		t.Errorf("send status after the restore: %+v, want a fresh replica's %+v", got, want)
	}
	if want := fmt.Sprintf("stream=%s applied=%d last_seq=%d", streams.Receipts, backedUp+3, backedUp); !strings.Contains(logs.String(), want) {
		t.Errorf("no warning with %q:\n%s", want, logs.String())
	}
}

// waitLogStartsAfter waits until PUSHGO_OPS's first sequence is past seq:
// every operation up to it has aged out of the log.
func waitLogStartsAfter(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("the log still starts at or before %d: %v", seq, err)
		}
		if info.State.FirstSeq > seq {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyDir replaces the directory to with a copy of from (a broker's data
// directory backed up, or restored).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// brokerOver returns open, which starts an embedded broker over dir (a
// data directory a test may back up and restore between starts) and
// connects to it, and where the last one open started is (to shut it
// down).
func brokerOver(t *testing.T, dir string) (open func() (*nats.Conn, jetstream.JetStream), last **broker.Embedded) {
	last = new(*broker.Embedded)
	return func() (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		e, err := broker.Start(broker.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		nc, err := e.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		*last = e
		return nc, js
	}, last
}

// lockedLog is a log's text, safe for a logger's concurrent writes.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAProjectionAheadOfATrimmedLogIsRebuiltWithItsAgedEntities: a
// projection folded past the log's last sequence (a broker restored from
// a backup) is of another log; when the log has lost operations to its
// retention, the projector folds it again by itself all the same, and
// carries over the live entities whose operations have all aged out: a
// Thing not updated since is kept as it was, while one the operations
// lost with the restore changed is not carried (its snapshot names them)
// and, with nothing of it in the log, is lost, which the log says.
// Before, the projector refused to start (folded again, the projection
// lost every such entity) until started with PUSHGO_REBUILD, which lost
// them.
func TestAProjectionAheadOfATrimmedLogIsRebuiltWithItsAgedEntities(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	ctx := context.Background()
	brokerDir, backup, dir := t.TempDir(), filepath.Join(t.TempDir(), "broker"), t.TempDir()
	open, b := brokerOver(t, brokerDir)
	message := func(js jetstream.JetStream, id string) uint64 {
		payload, _ := json.Marshal(ops.MessagePayload{MessageID: id, Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
		env := envelope(t, ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "op-" + id, EntityID: id, AcceptedAt: 1713750000007, Payload: payload}, nil)
		return publish(t, js, streams.OpSubject(ch, ops.KindMessage, id), env)
	}
	thing := func(js jetstream.JetStream, op ops.Name, id, title string) uint64 {
		env := envelope(t, ops.Envelope{V: 1, Op: op, ChannelID: ch, OpID: "op-" + id + "-" + strings.ReplaceAll(string(op), ".", "-"), EntityID: id, AcceptedAt: 1713750000007},
			ops.ThingPayload{ThingID: id, Title: title, ObservedAt: 1713750000000, Attrs: []byte(`{"n":1}`)})
		return publish(t, js, streams.OpSubject(ch, ops.KindThing, id), env)
	}

	nc, js := open()
	so := streams.DefaultOptions()
	so.Retention, so.DedupWindow = time.Second, 500*time.Millisecond
	if err := provision.Ensure(ctx, js, so); err != nil {
		t.Fatal(err)
	}
	p := start(t, nc, projector.Config{Dir: dir})
	thing(js, ops.ThingCreate, "kept", "NAS")
	thing(js, ops.ThingCreate, "changed", "router")
	m1 := message(js, "m1")
	waitFolded(t, p, m1)
	waitLogStartsAfter(t, js, m1)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	(*b).Shutdown()
	copyDir(t, brokerDir, backup) // backed up

	nc, js = open()
	p = start(t, nc, projector.Config{Dir: dir})
	changed := thing(js, ops.ThingUpdate, "changed", "router 2") // lost with the restore
	waitFolded(t, p, message(js, "m2"))                          // lost with the restore
	if snap, err := p.Store().Snapshot(ops.KindThing, ch, "changed"); err != nil || !strings.Contains(string(snap), fmt.Sprintf(`"last_seq":%d`, changed)) {
		t.Fatalf("the update to be lost with the restore was not folded: %s %v", snap, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	(*b).Shutdown()
	copyDir(t, backup, brokerDir) // the backup restored

	nc, js = open()
	var logs lockedLog
	p = start(t, nc, projector.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if p.Rebuilds() != 1 {
		t.Errorf("rebuilds at start ahead of a trimmed log: %d, want 1", p.Rebuilds())
	}
	waitFolded(t, p, message(js, "m3")) // folded: the projection is the restored log's
	for id, want := range map[string]bool{"kept": true, "changed": false} {
		snap, err := p.Store().Snapshot(ops.KindThing, ch, id)
		if err != nil {
			t.Fatal(err)
		}
		if (snap != nil) != want {
			t.Errorf("Thing %s after the rebuild: %s, want kept %v", id, snap, want)
		}
	}
	if want := "entities=1"; !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "not carried over") {
		t.Errorf("no warning of the entity changed by the lost operations (%q):\n%s", want, logs.String())
	}
}

// TestARebuildStoppedBeforeItsCarryOverIsDoneAgain: a rebuild that
// stopped (a crash, a kill) after it set the old projection aside and
// before its carry-over committed left the old projection aside and a
// partial new one in its place. The next start, even without Rebuild,
// rebuilds again from the one set aside, so the live entities whose
// operations have all left the log are not lost, and deletes it then; a
// projection set aside whose carry-over had committed (a crash while it
// was deleted) is deleted at the next start. Before, the partial new
// projection was opened as it was: without them. The old projection here
// never recorded its log's creation (a version before the record): it is
// carried from all the same (a first version took it for another log's).
func TestARebuildStoppedBeforeItsCarryOverIsDoneAgain(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = time.Second, 500*time.Millisecond
	br := brokertest.Start(t, brokertest.Streams(o))
	nc, js := br.NC, br.JS
	dir := filepath.Join(t.TempDir(), "projection")
	p := start(t, nc, projector.Config{Dir: dir})
	publish(t, js, streams.OpSubject(ch, ops.KindThing, "nas"), envelope(t,
		ops.Envelope{V: 1, Op: ops.ThingCreate, ChannelID: ch, OpID: "op-nas", EntityID: "nas", AcceptedAt: 1713750000007},
		ops.ThingPayload{ThingID: "nas", Title: "NAS", ObservedAt: 1713750000000, Attrs: []byte(`{"type":"HOST"}`)}))
	last := publish(t, js, streams.OpSubject(ch, ops.KindEvent, "disk"), envelope(t,
		ops.Envelope{V: 1, Op: ops.EventCreate, ChannelID: ch, OpID: "op-disk", EntityID: "disk", AcceptedAt: 1713750000008},
		ops.EventPayload{EventID: "disk", Title: "disk filling", Status: "firing", Message: "72%", Severity: "high", EventTime: 1713750000000, ThingID: "nas"}))
	waitFolded(t, p, last)
	waitLogStartsAfter(t, js, last)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	kept := func(p *projector.Projector) {
		t.Helper()
		for _, x := range []struct {
			kind ops.Kind
			id   string
		}{{ops.KindThing, "nas"}, {ops.KindEvent, "disk"}} {
			if snap, err := p.Store().Snapshot(x.kind, ch, x.id); err != nil || snap == nil {
				t.Fatalf("%s %s lost: %v", x.kind, x.id, err)
			}
		}
	}

	// The old projection never recorded its log's creation (folded by a
	// version before the record): it is still carried from.
	old, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetLogCreated(streams.Ops, 0); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// The rebuild stopped: the old projection aside, a new one begun.
	if err := os.Rename(dir, dir+".aside"); err != nil {
		t.Fatal(err)
	}
	partial, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := partial.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	if err := partial.Close(); err != nil {
		t.Fatal(err)
	}
	p = start(t, nc, projector.Config{Dir: dir})
	kept(p)
	if _, err := os.Stat(dir + ".aside"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the projection set aside is still there once carried over: %v", err)
	}
	update := publish(t, js, streams.OpSubject(ch, ops.KindThing, "nas"), envelope(t,
		ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: ch, OpID: "op-nas-2", EntityID: "nas", AcceptedAt: 1713750001007},
		ops.ThingPayload{ThingID: "nas", ObservedAt: 1713750001000, Attrs: []byte(`{"disk":0.9}`)}))
	waitFolded(t, p, update)
	if snap, err := p.Store().Snapshot(ops.KindThing, ch, "nas"); err != nil || !strings.Contains(string(snap), `"version":2`) {
		t.Fatalf("the carried Thing after an update: %s %v", snap, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// A carry-over committed, its old projection not yet deleted.
	if err := os.MkdirAll(filepath.Join(dir+".spent", "junk"), 0o755); err != nil {
		t.Fatal(err)
	}
	p = start(t, nc, projector.Config{Dir: dir})
	kept(p)
	if _, err := os.Stat(dir + ".spent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a spent projection is still there after a start: %v", err)
	}
}

// TestARebuildWithoutRoomKeepsTheOldProjection: a rebuild whose new
// projection the disk has no room for beside the old one ends the start
// with store.ErrDiskFull and keeps the old projection set aside, with its
// live entities whose operations have all left the log; the next start
// with room rebuilds from it and carries them over. Before, the old
// projection was deleted to make room, and they were lost.
func TestARebuildWithoutRoomKeepsTheOldProjection(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = time.Second, 500*time.Millisecond
	br := brokertest.Start(t, brokertest.Streams(o))
	nc, js := br.NC, br.JS
	dir := filepath.Join(t.TempDir(), "projection")
	p := start(t, nc, projector.Config{Dir: dir})
	last := publish(t, js, streams.OpSubject(ch, ops.KindThing, "nas"), envelope(t,
		ops.Envelope{V: 1, Op: ops.ThingCreate, ChannelID: ch, OpID: "op-nas", EntityID: "nas", AcceptedAt: 1713750000007},
		ops.ThingPayload{ThingID: "nas", Title: "NAS", ObservedAt: 1713750000000, Attrs: []byte(`{"type":"HOST"}`)}))
	waitFolded(t, p, last)
	waitLogStartsAfter(t, js, last)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// More room asked for than any disk has: the new projection cannot
	// be opened beside the old one.
	_, err := projector.Start(context.Background(), nc, projector.Config{Dir: dir, Rebuild: true, MinFreeBytes: 1 << 62})
	if !store.DiskFull(err) || !strings.Contains(err.Error(), dir+".aside") {
		t.Fatalf("a rebuild with no room: %v, want a full disk naming the projection kept aside", err)
	}
	if _, err := os.Stat(dir + ".aside"); err != nil {
		t.Fatalf("the old projection is not kept aside: %v", err)
	}
	p = start(t, nc, projector.Config{Dir: dir})
	if snap, err := p.Store().Snapshot(ops.KindThing, ch, "nas"); err != nil || snap == nil {
		t.Fatalf("the Thing whose operations left the log, after the rebuild with room: %s %v", snap, err)
	}
	if _, err := os.Stat(dir + ".aside"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the projection set aside is still there once carried over: %v", err)
	}
}

// TestABrokerRestoredUnderARunningProjectorIsFoldedAgain: an external
// broker whose data directory is restored from a backup while the
// projector runs (it reconnects to the restored log) leaves the projection
// past the log's end; the projector finds it at its next prune pass (not
// only at its next start) and folds the projection again, so what is
// appended after the restore is folded. Before, nothing appended at or
// below the old position was ever folded until a restart.
func TestABrokerRestoredUnderARunningProjectorIsFoldedAgain(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	ctx := context.Background()
	brokerDir, backup, dir := t.TempDir(), filepath.Join(t.TempDir(), "broker"), t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var e *broker.Embedded
	up := func() {
		t.Helper()
		var err error
		if e, err = broker.Start(broker.Config{Dir: brokerDir, Listen: addr}); err != nil {
			t.Fatal(err)
		}
	}
	up()
	t.Cleanup(func() { e.Shutdown() })
	nc, err := nats.Connect(e.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		mustNkey(t, e.CredentialsFile(broker.RoleAdmin)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := provision.Ensure(ctx, js, streams.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	thing := func(id string) uint64 {
		return publish(t, js, streams.OpSubject(ch, ops.KindThing, id), envelope(t,
			ops.Envelope{V: 1, Op: ops.ThingCreate, ChannelID: ch, OpID: "op-" + id, EntityID: id, AcceptedAt: 1713750000007},
			ops.ThingPayload{ThingID: id, Title: id, ObservedAt: 1713750000000}))
	}
	p := start(t, nc, projector.Config{Dir: dir, PruneInterval: 50 * time.Millisecond})
	waitFolded(t, p, thing("a"))
	e.Shutdown()
	copyDir(t, brokerDir, backup) // backed up
	up()
	for _, id := range []string{"b", "c", "d"} { // lost with the restore
		waitFolded(t, p, thing(id))
	}
	e.Shutdown()
	copyDir(t, backup, brokerDir) // the backup restored
	up()
	for deadline := time.Now().Add(20 * time.Second); p.Rebuilds() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no rebuild within 20 s of the restore: applied %d", p.Applied())
		}
	}
	after := thing("after")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st := p.Store(); st != nil { // nil while the rebuild swaps it
			if snap, err := st.Snapshot(ops.KindThing, ch, "after"); err == nil && snap != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the thing appended after the restore (sequence %d) is not folded: applied %d", after, p.Applied())
		}
	}
}

// mustNkey is the nats option that signs with the nkey seed in file.
func mustNkey(t *testing.T, file string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(file)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
