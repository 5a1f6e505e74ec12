package projector_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// counter is the value of p's counter name, of the series with labels
// ("name=value" each) when given.
func counter(t *testing.T, p *projector.Projector, name string, labels ...string) float64 {
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
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range labels {
				ln, lv, _ := strings.Cut(l, "=")
				found := false
				for _, h := range m.GetLabel() {
					found = found || h.GetName() == ln && h.GetValue() == lv
				}
				if !found {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s with labels %v", name, labels)
	return 0
}

// TestAnswersOverMaxPayload: a Thing larger than the broker's max_payload
// (a description near it, attrs within fold.MaxAttrsBytes) is answered in chunks of at most max_payload, in
// order, that join into the whole snapshot, to an asker that reads chunks;
// an asker that does not gets at once an error that says why (before, no
// answer at all: the asker timed out, and every retry too). A history page
// of large operations ends at the byte budget and says has_more.
func TestAnswersOverMaxPayload(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true})
	maxPayload := nc.MaxPayload()
	blob := func(i int) string { return strings.Repeat(fmt.Sprintf("%05d", i), 1200) } // 6,000 bytes
	var last uint64
	const updates = 40 // 240 KB of attrs, beside a 900 KB description
	for i := 0; i <= updates; i++ {
		now := int64(1713750000000 + i)
		env := ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: ch, OpID: fmt.Sprintf("op%03d", i), EntityID: "big", AcceptedAt: now}
		pl := ops.ThingPayload{ThingID: "big", ObservedAt: now}
		if i == 0 {
			env.Op, pl.Title, pl.Description = ops.ThingCreate, "big", strings.Repeat("d", 900_000)
		} else {
			pl.Attrs = []byte(fmt.Sprintf(`{"k%02d":"%s"}`, i, blob(i)))
		}
		env.Payload, _ = json.Marshal(pl, json.Deterministic(true))
		last = publishSelectOp(t, js, ch, &env)
	}
	waitApplied(t, p, last)

	// Without Chunks: a clear error, at once.
	req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "big"})
	m, err := nc.Request(reads.Subject(reads.ThingGet), req, 10*time.Second)
	if err != nil {
		t.Fatalf("no answer to an asker that does not read chunks: %v", err)
	}
	var resp reads.Response
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != apierr.InternalError || !strings.Contains(resp.Error, "max_payload") {
		t.Fatalf("answer %+v, want internal_error naming max_payload", resp)
	}

	// With Chunks: every chunk within max_payload, numbered in order.
	req, _ = json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "big", Chunks: true})
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for i := 1; ; i++ {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if int64(len(m.Data)+len(reads.ChunkHeader)+32) > maxPayload {
			t.Fatalf("chunk %d of %d bytes, max_payload %d", i, len(m.Data), maxPayload)
		}
		ci, n, ok := reads.ParseChunk(m.Header.Get(reads.ChunkHeader))
		if !ok || ci != i || n < 2 {
			t.Fatalf("chunk %d has header %q", i, m.Header.Get(reads.ChunkHeader))
		}
		joined = append(joined, m.Data...)
		if ci == n {
			break
		}
	}
	resp = reads.Response{}
	if err := json.Unmarshal(joined, &resp); err != nil || resp.ErrorCode != "" {
		t.Fatalf("joined answer: %v %s", err, resp.Error)
	}
	var snap struct {
		Attrs   map[string]string `json:"attrs"`
		Version int               `json:"version"`
	}
	if err := json.Unmarshal(resp.Data, &snap, json.RejectUnknownMembers(false)); err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) <= int(maxPayload) || len(snap.Attrs) != updates || snap.Attrs["k17"] != blob(17) || snap.Version != updates+1 {
		t.Fatalf("snapshot of %d bytes: %d attrs, version %d", len(resp.Data), len(snap.Attrs), snap.Version)
	}
	if got := counter(t, p, "pushgo_projector_read_answers_chunked_total"); got != 1 {
		t.Fatalf("chunked answers counted %v", got)
	}
	if got := counter(t, p, "pushgo_projector_read_answers_refused_total"); got != 1 {
		t.Fatalf("refused answers counted %v", got)
	}

	// History at the largest limit: the page ends within the budget.
	req, _ = json.Marshal(reads.Request{Route: reads.ChannelHistory, ChannelID: ch, Limit: reads.MaxLimit})
	m, err = nc.Request(reads.Subject(reads.ChannelHistory), req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp = reads.Response{}
	var h reads.HistoryData
	if err := json.Unmarshal(m.Data, &resp); err != nil || json.Unmarshal(resp.Data, &h) != nil {
		t.Fatalf("history answer %.200s", m.Data)
	}
	size := 0
	for _, it := range h.Items {
		size += len(it) + 1
	}
	if !h.HasMore || len(h.Items) >= updates || size > reads.PageBytes(maxPayload) || len(m.Data) > int(maxPayload) {
		t.Fatalf("history page: %d items, %d bytes, has_more %v", len(h.Items), size, h.HasMore)
	}
	if !bytes.Contains(h.Items[len(h.Items)-1], []byte(fmt.Sprintf(`"seq":%d`, h.NextAfter))) {
		t.Fatalf("next_after %d is not the page's last item", h.NextAfter)
	}
	if got := counter(t, p, "pushgo_projector_read_pages_cut_total"); got != 1 {
		t.Fatalf("pages cut counted %v", got)
	}
}

// TestPagesAreTheStoredBytesAsTheEncoderWroteThem: a history page and a
// list page answered over NATS are byte for byte the Response the old
// path marshalled around the same stored items (json.Marshal of
// HistoryData and ListData, then of Response), for a page near the byte
// budget (about 1 MB, items of 70 KB), a page cut by kind, and the last
// page; a snapshot larger than max_payload, sent in chunks, joins into the
// Response marshalled around the stored snapshot.
func TestPagesAreTheStoredBytesAsTheEncoderWroteThem(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	b := brokertest.Start(t)
	p := start(t, b.NC, projector.Config{InMemory: true, Serve: true})
	asker, _ := b.Conn(t)
	text := func(i int) string { return strings.Repeat(fmt.Sprintf("é<%04d>\u2028", i), 6000) } // ~70 KB
	var last uint64
	for i := range 60 {
		now := int64(1713750000000 + i)
		env := ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: ch, OpID: fmt.Sprintf("op%03d", i), EntityID: fmt.Sprintf("t%d", i%3), AcceptedAt: now}
		pl := ops.ThingPayload{ThingID: env.EntityID, ObservedAt: now, Attrs: []byte(fmt.Sprintf(`{"k%02d":%q}`, i, text(i)))}
		if i < 3 {
			env.Op, pl.Title = ops.ThingCreate, "thing \"quoted\" "+env.EntityID
		}
		if i == 0 { // past max_payload with its attrs (fold.MaxAttrsBytes bounds those alone)
			pl.Description = strings.Repeat("d", 900_000)
		}
		env.Payload, _ = json.Marshal(pl, json.Deterministic(true))
		last = publishSelectOp(t, b.JS, ch, &env)
	}
	waitApplied(t, p, last)
	ask := func(req reads.Request) []byte {
		t.Helper()
		req.Chunks = true
		body, _ := json.Marshal(req)
		inbox := asker.NewInbox()
		sub, err := asker.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := asker.PublishRequest(reads.Subject(req.Route), inbox, body); err != nil {
			t.Fatal(err)
		}
		var joined []byte
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			joined = append(joined, m.Data...)
			i, n, ok := reads.ParseChunk(m.Header.Get(reads.ChunkHeader))
			if !ok || i == n {
				return joined
			}
		}
	}
	oldResponse := func(page any) []byte {
		t.Helper()
		data, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(reads.Response{Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	values := func(items [][]byte) []jsontext.Value {
		out := make([]jsontext.Value, len(items))
		for i, it := range items {
			out[i] = it
		}
		return out
	}
	budget := reads.PageBytes(asker.MaxPayload())
	for _, f := range []store.HistoryFilter{
		{ChannelID: ch, Limit: reads.MaxLimit},
		{ChannelID: ch, After: 50, Limit: reads.MaxLimit},
		{ChannelID: ch, Limit: 2, Kinds: map[ops.Kind]bool{ops.KindThing: true}},
	} {
		f.MaxBytes = budget
		page, err := p.Store().ReadHistory(f)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []ops.Kind
		for k := range f.Kinds {
			kinds = append(kinds, k)
		}
		got := ask(reads.Request{Route: reads.ChannelHistory, ChannelID: ch, After: f.After, Limit: f.Limit, Kinds: kinds})
		want := oldResponse(reads.HistoryData{Items: values(page.Items), NextAfter: page.NextAfter, HasMore: page.HasMore, FirstSeq: page.FirstSeq})
		if !bytes.Equal(got, want) {
			t.Fatalf("history after %d: %d bytes, not the %d the encoder wrote", f.After, len(got), len(want))
		}
		if f.After == 0 && f.Limit == reads.MaxLimit && (!page.HasMore || len(got) < budget/2) {
			t.Fatalf("the first page is not near the byte budget: %d bytes, has_more %v", len(got), page.HasMore)
		}
	}
	list, err := p.Store().List(store.ListFilter{Kind: ops.KindThing, ChannelID: ch, Limit: 2, MaxBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	got := ask(reads.Request{Route: reads.ChannelThings, ChannelID: ch, Limit: 2})
	if want := oldResponse(reads.ListData{Items: values(list.Items), NextCursor: list.Cursor, HasMore: list.Cursor != ""}); !bytes.Equal(got, want) {
		t.Fatalf("things page:\n got %.300s\nwant %.300s", got, want)
	}
	snap, err := p.Store().Snapshot(ops.KindThing, ch, "t0")
	if err != nil {
		t.Fatal(err)
	}
	got = ask(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "t0"})
	if want := oldResponse(jsontext.Value(snap)); len(snap) <= int(asker.MaxPayload()) || !bytes.Equal(got, want) {
		t.Fatalf("snapshot of %d bytes in chunks: %d bytes, not the %d the encoder wrote", len(snap), len(got), len(want))
	}
}

// TestReadServiceHasAConnectionOfItsOwn: the projector answers reads on a
// connection of its own, opened with the options of the one it folds
// over, so a read's request and answer never queue behind the operations
// the fold consumes: 20 answers of 300 KB leave the fold's connection
// without their bytes (before, all 6 MB went out through it), and Close
// closes the reads' connection, not the one it was given.
func TestReadServiceHasAConnectionOfItsOwn(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	b := brokertest.Start(t)
	foldNC, js := b.Conn(t)
	p, err := projector.Start(context.Background(), foldNC, projector.Config{InMemory: true, Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var last uint64
	for i := range 10 {
		env := ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: fmt.Sprintf("op%03d", i), EntityID: fmt.Sprintf("m%d", i), AcceptedAt: 1713750000000}
		env.Payload, _ = json.Marshal(ops.MessagePayload{MessageID: env.EntityID, Title: "t", Body: strings.Repeat("x", 30_000), Severity: "normal", OccurredAt: 1713750000000})
		last = publishSelectOp(t, js, ch, &env)
	}
	waitApplied(t, p, last)
	req, _ := json.Marshal(reads.Request{Route: reads.ChannelHistory, ChannelID: ch, Limit: reads.MaxLimit})
	before := foldNC.Stats()
	answered := 0
	for range 20 {
		m, err := b.NC.Request(reads.Subject(reads.ChannelHistory), req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		answered += len(m.Data)
		if !bytes.Contains(m.Data, []byte(`"seq":10,`)) {
			t.Fatalf("history answer %.200s", m.Data)
		}
	}
	after := foldNC.Stats()
	if out := after.OutBytes - before.OutBytes; out > uint64(answered/10) {
		t.Fatalf("the fold's connection sent %d bytes while %d bytes of answers went out", out, answered)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if foldNC.IsClosed() {
		t.Fatal("closing the projector closed the connection it was given")
	}
	if _, err := b.NC.Request(reads.Subject(reads.ChannelHistory), req, time.Second); err == nil {
		t.Fatal("a closed projector still answered")
	}
}

// TestServeLocalAnswersAsOverNATS: a read asked in the process (ingest
// beside the projector) gets the very bytes a replica answers over the
// broker, waits for its barrier like one, and is refused (ok false, so the
// read goes over the broker) once the projector has stopped serving.
func TestServeLocalAnswersAsOverNATS(t *testing.T) {
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true})
	last := workload(t, js, rand.New(rand.NewPCG(7, 9)), 300)
	waitApplied(t, p, last)

	overNATS := func(req reads.Request) []byte {
		t.Helper()
		req.Chunks = true
		b, _ := json.Marshal(req)
		m, err := nc.Request(reads.Subject(req.Route), b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := reads.ResponseData(m.Data); ok {
			return data
		}
		return m.Data
	}
	local := func(req reads.Request) reads.Response {
		t.Helper()
		req.Chunks = true
		resp, ok := p.ServeLocal(&req)
		if !ok {
			t.Fatalf("a serving projector refused the local read %+v", req)
		}
		return resp
	}
	before := p.ServedLocal()
	for _, ch := range []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "7VNDECTMTAYVFHY2G194E2AY8Z"} {
		for _, req := range []reads.Request{
			{Route: reads.ChannelHistory, ChannelID: ch, Limit: 1000},
			{Route: reads.ChannelHistory, ChannelID: ch, Limit: 7, After: 40},
			{Route: reads.ChannelThings, ChannelID: ch, Limit: 100},
			{Route: reads.ChannelEvents, ChannelID: ch, Limit: 100},
		} {
			resp := local(req)
			if resp.ErrorCode != "" {
				t.Fatalf("%+v: local answer %s %s", req, resp.ErrorCode, resp.Error)
			}
			if want := overNATS(req); !bytes.Equal(resp.Data, want) {
				t.Fatalf("%+v: local answer\n%s\nover NATS\n%s", req, resp.Data, want)
			}
		}
	}
	if resp := local(reads.Request{Route: reads.ThingGet, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ThingID: "no-such"}); resp.ErrorCode != apierr.ThingNotFound {
		t.Fatalf("a missing thing answered %+v locally", resp)
	}
	if got := p.ServedLocal() - before; got != 9 {
		t.Fatalf("ServedLocal counted %d reads, want 9", got)
	}

	// The barrier: a read asked for an operation not yet appended answers
	// once it is folded, with it.
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	answered := make(chan reads.Response, 1)
	go func() {
		resp, _ := p.ServeLocal(&reads.Request{Route: reads.ChannelHistory, ChannelID: ch, Limit: 1, After: last, MinSeq: last + 1})
		answered <- resp
	}()
	now := int64(1713760000000)
	env := ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "late-op", EntityID: "late", AcceptedAt: now}
	env.Payload, _ = json.Marshal(ops.MessagePayload{MessageID: "late", Title: "late", Severity: "normal", OccurredAt: now}, json.Deterministic(true))
	seq := publishSelectOp(t, js, ch, &env)
	if seq != last+1 {
		t.Fatalf("appended at %d, want %d", seq, last+1)
	}
	resp := <-answered
	if resp.ErrorCode != "" || !bytes.Contains(resp.Data, []byte(`"late-op"`)) {
		t.Fatalf("a read with barrier %d answered %s %s %s, want the operation appended at it", last+1, resp.Data, resp.ErrorCode, resp.Error)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.ServeLocal(&reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "x"}); ok {
		t.Fatal("a closed projector answered a local read")
	}
}

// TestReadsWaitingForTheFoldHoldNoPlace: reads waiting for a barrier the
// fold has not reached (a write burst) do not hold up the replica's other
// reads: with twice as many such waits as MaxConcurrentReads has places, a
// read already folded and /readyz's status request are answered while
// the waits go on (before, they came after the waits' ReadWait).
func TestReadsWaitingForTheFoldHoldNoPlace(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	b := brokertest.Start(t)
	p := start(t, b.NC, projector.Config{InMemory: true, Serve: true, MaxConcurrentReads: 2, ReadWait: 10 * time.Minute})
	// Every wait is for sequence 1, which the log does not hold yet.
	waiting := make([]chan *nats.Msg, 0, 4)
	for i := range 4 {
		req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: fmt.Sprintf("t%d", i), MinSeq: 1})
		inbox := nats.NewInbox()
		c := make(chan *nats.Msg, 1)
		if _, err := b.NC.ChanSubscribe(inbox, c); err != nil {
			t.Fatal(err)
		}
		if err := b.NC.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, c)
	}
	// Sent after the waits on the same connection: the replica receives
	// them after the waits.
	status, _ := json.Marshal(reads.Request{Route: reads.ProjectorStatus})
	if m, err := b.NC.Request(reads.Subject(reads.ProjectorStatus), status, time.Minute); err != nil || !bytes.Contains(m.Data, []byte(`"applied"`)) {
		t.Fatalf("status behind %d reads waiting for the fold: %v %v", len(waiting), m, err)
	}
	folded, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "absent"})
	if m, err := b.NC.Request(reads.Subject(reads.ThingGet), folded, time.Minute); err != nil || !bytes.Contains(m.Data, []byte(`thing_not_found`)) {
		t.Fatalf("a read with no barrier behind %d reads waiting for the fold: %v %v", len(waiting), m, err)
	}
	for i, c := range waiting {
		select {
		case m := <-c:
			t.Fatalf("wait %d was answered before the fold reached its barrier: %s", i, m.Data)
		default: // still waiting, as it must (sequence 1 is not in the log)
		}
	}
	// The fold reaches sequence 1: every wait is answered.
	env := ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "op1", EntityID: "m1", AcceptedAt: 1713750000000}
	env.Payload, _ = json.Marshal(ops.MessagePayload{MessageID: "m1", Title: "t", Severity: "normal", OccurredAt: 1713750000000})
	waitApplied(t, p, publishSelectOp(t, b.JS, ch, &env))
	for i, c := range waiting {
		select {
		case m := <-c:
			if !bytes.Contains(m.Data, []byte(`thing_not_found`)) {
				t.Errorf("wait %d: %s", i, m.Data)
			}
		case <-time.After(time.Minute):
			t.Fatalf("wait %d not answered once the fold passed its barrier", i)
		}
	}
}

// TestReadPastALogThatEmptied: when every operation left the log before
// the fold received it (a gateway idle past its retention, then a new
// replica or a rebuild), nothing comes to move the applied
// sequence to the log's last, which reads wait for: the first read to
// wait in vain has the fold look, and it moves past the vanished ones, so
// the next reads are answered (an unknown op_id 404, not 503 for ever).
// What comes to the log afterwards is folded as ever.
func TestReadPastALogThatEmptied(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = time.Second, 500*time.Millisecond
	b := brokertest.Start(t, brokertest.Streams(o))
	var last uint64
	for i := range 3 {
		env := ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: fmt.Sprintf("gone%d", i), EntityID: fmt.Sprintf("m%d", i), AcceptedAt: 1713750000000}
		env.Payload, _ = json.Marshal(ops.MessagePayload{MessageID: env.EntityID, Title: "t", Severity: "normal", OccurredAt: 1713750000000})
		last = publishSelectOp(t, b.JS, ch, &env)
	}
	s, err := b.JS.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) { // the retention passes
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log still holds %d operations 20 s into a retention of 1 s", info.State.Msgs)
		}
	}
	p := start(t, b.NC, projector.Config{InMemory: true, Serve: true, ReadWait: 100 * time.Millisecond})
	req, _ := json.Marshal(reads.Request{Route: reads.SendStatus, OpID: "never", MinSeq: last})
	for deadline := time.Now().Add(20 * time.Second); ; {
		m, err := b.NC.Request(reads.Subject(reads.SendStatus), req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(m.Data, []byte(`"send_status_not_found"`)) {
			break
		}
		if !bytes.Contains(m.Data, []byte(`"projection_lagging"`)) || time.Now().After(deadline) {
			t.Fatalf("send status of an unknown op_id, the log emptied: %s", m.Data)
		}
	}
	if got := p.Applied(); got != last {
		t.Fatalf("applied %d, want the log's last sequence %d", got, last)
	}
	// A retention long enough that the next operation stays until folded
	// however loaded the machine is.
	cfg := s.CachedInfo().Config
	cfg.MaxAge = time.Hour
	if _, err := b.JS.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	env := ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "after", EntityID: "m9", AcceptedAt: 1713750000000}
	env.Payload, _ = json.Marshal(ops.MessagePayload{MessageID: "m9", Title: "t", Severity: "normal", OccurredAt: 1713750000000})
	next := publishSelectOp(t, b.JS, ch, &env)
	waitApplied(t, p, next)
	after, _ := json.Marshal(reads.Request{Route: reads.SendStatus, ChannelID: ch, OpID: "after", MinSeq: next})
	if m, err := b.NC.Request(reads.Subject(reads.SendStatus), after, 10*time.Second); err != nil || !bytes.Contains(m.Data, []byte(`"op_id":"after"`)) {
		t.Fatalf("send status of an operation appended after: %v %v", m, err)
	}
}
