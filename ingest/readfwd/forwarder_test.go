package readfwd_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/ingest/readfwd"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/reads"
)

const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

// chunk is one message of an answer: i of n (0 of 0: a whole answer).
type chunk struct {
	i, n int
	data []byte
}

// answerer stands in for a projector replica on the real broker: it
// answers thing.get with a snapshot of the requested size (thing_id
// "size-N") in the messages send returns.
func answerer(t *testing.T, nc *nats.Conn, send func(m *nats.Msg, answer []byte, req reads.Request) []chunk) {
	t.Helper()
	// An answer under way ends before the test does, and none starts
	// after it (Cleanup): an ask answered late, after its read took another
	// ask's answer, reported its publish's failure once the test had ended.
	var answering sync.Mutex
	ended := false
	sub, err := nc.QueueSubscribe(reads.Subject(reads.ThingGet), reads.QueueGroup, func(m *nats.Msg) {
		answering.Lock()
		defer answering.Unlock()
		if ended {
			return
		}
		var req reads.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("request: %v", err)
			return
		}
		var size int
		_, _ = fmt.Sscanf(req.ThingID, "size-%d", &size)
		snap, _ := json.Marshal(map[string]string{"thing_id": req.ThingID, "blob": strings.Repeat("x", size)})
		b, _ := json.Marshal(reads.Response{Data: jsontext.Value(snap)})
		for _, c := range send(m, b, req) {
			msg := &nats.Msg{Subject: m.Reply, Data: c.data}
			if c.n > 0 {
				msg.Header = nats.Header{reads.ChunkHeader: []string{reads.FormatChunk(c.i, c.n)}}
			}
			if err := nc.PublishMsg(msg); err != nil {
				t.Errorf("publish chunk %d: %v", c.i, err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		answering.Lock()
		ended = true
		answering.Unlock()
		_ = sub.Unsubscribe()
	})
	// QueueSubscribe only buffers the SUB; the reads go over the
	// forwarder's own connection, which the server reads independently. A
	// round trip on nc makes the broker hold the subscription before any
	// read is sent, else a read can be answered "no responders".
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// split cuts b as a projector does: one message if it fits, else chunks of
// reads.ChunkBytes.
func split(nc *nats.Conn, b []byte) []chunk {
	if len(b) <= int(nc.MaxPayload()) {
		return []chunk{{data: b}}
	}
	size := reads.ChunkBytes(nc.MaxPayload())
	n := (len(b) + size - 1) / size
	var out []chunk
	for i := 1; len(b) > 0; i++ {
		k := min(size, len(b))
		out, b = append(out, chunk{i, n, b[:k]}), b[k:]
	}
	return out
}

func forwarder(t *testing.T, nc *nats.Conn, timeout time.Duration) *readfwd.Forwarder {
	t.Helper()
	f, err := readfwd.New(context.Background(), nc, timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestAnswersOfAnySize: answers from a few bytes to several times the
// broker's max_payload come back whole through Read, also many at once
// (each asker gets its own answer), and every request says it reads
// chunks.
func TestAnswersOfAnySize(t *testing.T) {
	b := brokertest.Start(t)
	noChunks := make(chan bool, 1)
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, req reads.Request) []chunk {
		if !req.Chunks {
			select {
			case noChunks <- true:
			default:
			}
		}
		return split(b.NC, answer)
	})
	f := forwarder(t, b.NC, 20*time.Second)
	mp := int(b.NC.MaxPayload())
	sizes := []int{0, 10, mp - 200, mp, mp + 1, 3*mp + 17}
	var wg sync.WaitGroup
	for round := range 4 {
		for _, size := range sizes {
			wg.Go(func() {
				size := size + round
				id := fmt.Sprintf("size-%d", size)
				data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: id})
				if aerr != nil {
					t.Errorf("%s: %v", id, aerr)
					return
				}
				var snap map[string]string
				if err := json.Unmarshal(data, &snap); err != nil || snap["thing_id"] != id || len(snap["blob"]) != size {
					t.Errorf("%s: answer of %d bytes is not its own (%v)", id, len(data), err)
				}
			})
		}
	}
	wg.Wait()
	select {
	case <-noChunks:
		t.Fatal("a request did not say it reads chunks")
	default:
	}
}

// TestLostChunkIsRetryable: an answer with a chunk missing (a slow
// consumer dropped it) is read_unavailable with Retry-After at once, not
// a wrong answer and not a wait for the timeout; the next read succeeds.
func TestLostChunkIsRetryable(t *testing.T) {
	b := brokertest.Start(t)
	var mu sync.Mutex
	drop := true
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, req reads.Request) []chunk {
		chunks := split(b.NC, answer)
		mu.Lock()
		defer mu.Unlock()
		if drop {
			drop = false
			return append(chunks[:1:1], chunks[2:]...)
		}
		return chunks
	})
	f := forwarder(t, b.NC, time.Minute)
	req := func() (jsontext.Value, *apierr.Error) {
		return f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: fmt.Sprintf("size-%d", 3*b.NC.MaxPayload())})
	}
	start := time.Now()
	_, aerr := req()
	if aerr == nil || aerr.Code != apierr.ReadUnavailable || aerr.RetryAfter == 0 {
		t.Fatalf("answer with a lost chunk: %v", aerr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the lost chunk was noticed after %v", d)
	}
	mu.Lock()
	answered := !drop
	mu.Unlock()
	if !answered {
		t.Fatal("the first read was not answered (no projector subscribed yet?), so no chunk was lost")
	}
	data, aerr := req()
	if aerr != nil || !bytes.Contains(data, []byte(`"blob":"xxx`)) {
		t.Fatalf("retry: %v", aerr)
	}
}

// TestNoProjector: with no projector subscribed a read is
// read_unavailable with Retry-After (the broker says no one answers).
func TestNoProjector(t *testing.T) {
	b := brokertest.Start(t)
	f := forwarder(t, b.NC, time.Minute)
	start := time.Now()
	_, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "x"})
	if aerr == nil || aerr.Code != apierr.ReadUnavailable || aerr.RetryAfter == 0 {
		t.Fatalf("no projector: %v", aerr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("no projector noticed after %v", d)
	}
}

// TestAnswerBytesPassThroughAcrossChunks: the data of a success comes out
// of Read byte for byte as the projector framed it, unparsed, also when the
// answer's chunks cut through its framing and its data (a page larger than
// one NATS message); an error cut in chunks is still decoded as an error.
func TestAnswerBytesPassThroughAcrossChunks(t *testing.T) {
	b := brokertest.Start(t)
	// A page as the projector writes it; its own spacing shows that no
	// one re-encodes it on the way.
	page := []byte(`{"items":[{"seq":1, "payload":{"t":"é\u00e9"}},` + strings.Repeat(`{"seq":2,"x":"abc"},`, 50000) + `{}],"next_after":9,"has_more":false,"first_seq":1}`)
	answerer(t, b.NC, func(m *nats.Msg, _ []byte, req reads.Request) []chunk {
		answer := reads.AppendResponse(nil, page)
		if req.ThingID == "error" {
			answer, _ = json.Marshal(reads.Response{ErrorCode: apierr.ThingNotFound, Error: "thing_id: not found"})
		}
		cuts := []int{0, 3, 9, len(answer) / 2, len(answer) - 1, len(answer)} // inside the prefix, the data, before the suffix
		var out []chunk
		for i := 1; i < len(cuts); i++ {
			out = append(out, chunk{i, len(cuts) - 1, answer[cuts[i-1]:cuts[i]]})
		}
		return out
	})
	f := forwarder(t, b.NC, 20*time.Second)
	data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "page"})
	if aerr != nil || !bytes.Equal(data, page) {
		t.Fatalf("answer of %d bytes, want the %d the projector wrote (%v)", len(data), len(page), aerr)
	}
	if _, aerr = f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "error"}); aerr == nil ||
		aerr.Code != apierr.ThingNotFound || aerr.Detail != "thing_id: not found" {
		t.Fatalf("error in chunks: %v", aerr)
	}
}

// TestReadsHaveAConnectionOfTheirOwn: a forwarder made over the
// connection the appends use sends its reads and receives their answers on
// a connection of its own (same broker, same credentials), so a read never
// queues behind the appends' traffic on one socket and one read loop:
// 50 answers of 100 KB come back whole while the appends' connection
// carries none of their bytes (before, all 5 MB went through it); closing
// the forwarder closes its connection, not the appends'.
func TestReadsHaveAConnectionOfTheirOwn(t *testing.T) {
	b := brokertest.Start(t)
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, _ reads.Request) []chunk { return split(b.NC, answer) })
	appends, _ := b.Conn(t)
	f, err := readfwd.New(context.Background(), appends, 20*time.Second, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := appends.Stats()
	const n, size = 50, 100_000
	for range n {
		data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: fmt.Sprintf("size-%d", size)})
		if aerr != nil || len(data) < size {
			t.Fatalf("read: %d bytes, %v", len(data), aerr)
		}
	}
	after := appends.Stats()
	if in, out := after.InBytes-before.InBytes, after.OutBytes-before.OutBytes; in+out > n*size/10 {
		t.Fatalf("the appends' connection carried %d bytes in and %d out for %d reads of %d bytes", in, out, n, size)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if appends.IsClosed() {
		t.Fatal("closing the forwarder closed the connection it was given")
	}
	if _, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-1"}); aerr == nil {
		t.Fatal("a closed forwarder still answered")
	}
}

// localProjector stands in for the projector of the process: it answers
// while serving is set, else says it cannot.
type localProjector struct {
	mu      sync.Mutex
	serving bool
	lagging bool // answer projection_lagging to a read with a barrier
	asked   []reads.Request
}

func (l *localProjector) ServeLocal(req *reads.Request) (reads.Response, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.serving {
		return reads.Response{}, false
	}
	l.asked = append(l.asked, *req)
	if l.lagging && req.MinSeq > 0 {
		return reads.Response{ErrorCode: apierr.ProjectionLagging, Error: "behind"}, true
	}
	if req.ThingID == "missing" {
		return reads.Response{ErrorCode: apierr.ThingNotFound, Error: "no such thing"}, true
	}
	return reads.Response{Data: jsontext.Value(`{"from":"local"}`)}, true
}

// TestLocalProjectorAskedFirst: a Forwarder with a projector in its
// process asks it first, with the barrier and framing a replica over the
// broker would get, and passes its errors on as such; while that projector
// serves no reads (starting, rebuilding), the read goes to a replica over
// the broker.
func TestLocalProjectorAskedFirst(t *testing.T) {
	b := brokertest.Start(t)
	var remote sync.Mutex
	remoteAsked := 0
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, req reads.Request) []chunk {
		remote.Lock()
		remoteAsked++
		remote.Unlock()
		return split(b.NC, answer)
	})
	local := &localProjector{serving: true}
	f, err := readfwd.New(context.Background(), b.NC, 5*time.Second, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })

	data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
	if aerr != nil || string(data) != `{"from":"local"}` {
		t.Fatalf("read with a serving local projector: %s, %v; want the local answer", data, aerr)
	}
	if _, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "missing"}); aerr == nil || aerr.Code != apierr.ThingNotFound {
		t.Fatalf("the local projector's thing_not_found came back as %v", aerr)
	}
	local.mu.Lock()
	asked := append([]reads.Request(nil), local.asked...)
	local.serving = false
	local.mu.Unlock()
	if len(asked) != 2 || !asked[0].Chunks || asked[0].Route != reads.ThingGet {
		t.Fatalf("local projector asked %+v", asked)
	}
	remote.Lock()
	if remoteAsked != 0 {
		t.Fatalf("a replica over the broker was asked %d times while the local projector served", remoteAsked)
	}
	remote.Unlock()

	data, aerr = f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
	if aerr != nil || !bytes.Contains(data, []byte(`"size-3"`)) {
		t.Fatalf("read while the local projector serves nothing: %s, %v; want the replica's answer", data, aerr)
	}
	remote.Lock()
	defer remote.Unlock()
	if remoteAsked != 1 {
		t.Fatalf("replica over the broker asked %d times, want 1", remoteAsked)
	}
}

// TestSelectionWaitsForThisProcessThingWrites: a Thing selection carries
// as its barrier the channel's last Thing write this process acknowledged
// (FollowThingWrites), so the projector answers it only once it has folded
// that write; without it, the projection as it is (barrier 0); a
// single-Thing read keeps its own barrier (the entity's last write, none
// here); a projector too far behind to reach the mark answers the
// selection as it is instead of refusing the report.
func TestSelectionWaitsForThisProcessThingWrites(t *testing.T) {
	b := brokertest.Start(t)
	local := &localProjector{serving: true}
	f, err := readfwd.New(context.Background(), b.NC, 5*time.Second, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	sel := &reads.Request{Route: reads.ThingsSelect, ChannelID: ch, Selector: "type(HOST)"}
	if _, aerr := f.Read(context.Background(), sel); aerr != nil {
		t.Fatal(aerr)
	}
	marks := oplog.NewThingMarks()
	marks.Note(ch, 42)
	f.FollowThingWrites(marks)
	if _, aerr := f.Read(context.Background(), sel); aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-1"}); aerr != nil {
		t.Fatal(aerr)
	}
	local.mu.Lock()
	asked := append([]reads.Request(nil), local.asked...)
	local.asked, local.lagging = nil, true
	local.mu.Unlock()
	if len(asked) != 3 || asked[0].MinSeq != 0 || asked[1].MinSeq != 42 || asked[2].MinSeq != 0 {
		t.Fatalf("reads asked %+v; want barriers 0, then 42 (the Thing write noted), then 0 (the thing's own, none)", asked)
	}

	data, aerr := f.Read(context.Background(), sel)
	if aerr != nil || string(data) != `{"from":"local"}` {
		t.Fatalf("selection with the projector behind the mark: %s, %v; want the projection as it is", data, aerr)
	}
	local.mu.Lock()
	defer local.mu.Unlock()
	if len(local.asked) != 2 || local.asked[0].MinSeq != 42 || local.asked[1].MinSeq != 0 {
		t.Fatalf("selection behind the mark asked %+v; want barrier 42, then 0", local.asked)
	}
}

// TestReadRefusedByAStoppingReplicaIsAskedAgain: a replica that stopped
// serving (a rebuild, a stop) answers read_unavailable the reads it was
// handed; the read is asked again, and the queue group hands it to another
// replica. It was a 503 to the client.
func TestReadRefusedByAStoppingReplicaIsAskedAgain(t *testing.T) {
	b := brokertest.Start(t)
	var mu sync.Mutex
	asked := 0
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, _ reads.Request) []chunk {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if asked == 1 {
			refused, _ := json.Marshal(reads.Response{ErrorCode: apierr.ReadUnavailable, Error: "this projector is not serving reads now"})
			return []chunk{{data: refused}}
		}
		return []chunk{{data: answer}}
	})
	f := forwarder(t, b.NC, time.Minute)
	data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
	if aerr != nil || !bytes.Contains(data, []byte(`"xxx"`)) {
		t.Fatalf("read after a refusal: %s %v, want the answer of the next replica", data, aerr)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 2 {
		t.Fatalf("asked %d times, want 2", asked)
	}
}

// TestCatchingUpReplicaHandsTheReadOn: a replica catching up answers at
// once that it would not reach the read's barrier in time (CatchingUp);
// the front asks again, and the queue group hands the read to a
// replica that answers it. With none but catching-up replicas the read
// ends projection_lagging (503) after a bounded number of asks.
func TestCatchingUpReplicaHandsTheReadOn(t *testing.T) {
	b := brokertest.Start(t)
	var mu sync.Mutex
	asked, lagging := 0, 3
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, _ reads.Request) []chunk {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if asked <= lagging {
			behind, _ := json.Marshal(reads.Response{ErrorCode: apierr.ProjectionLagging, Error: "catching up", CatchingUp: true})
			return []chunk{{data: behind}}
		}
		return []chunk{{data: answer}}
	})
	f := forwarder(t, b.NC, time.Minute)
	data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
	if aerr != nil || !bytes.Contains(data, []byte(`"xxx"`)) {
		t.Fatalf("read after %d catching-up answers: %s %v, want the answer of the replica that came next", lagging, data, aerr)
	}
	mu.Lock()
	if asked != lagging+1 {
		t.Fatalf("asked %d times, want %d", asked, lagging+1)
	}
	asked, lagging = 0, 1<<30
	mu.Unlock()

	_, aerr = f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
	if aerr == nil || aerr.Code != apierr.ProjectionLagging || aerr.RetryAfter == 0 {
		t.Fatalf("every replica catching up: %v, want projection_lagging with Retry-After", aerr)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked < 2 || asked > 16 {
		t.Fatalf("every replica catching up: asked %d times, want a few and a bound", asked)
	}
}

// unavailableLocal is a projector in the process that cannot serve (its
// store rebuilding or failing).
type unavailableLocal struct{}

func (unavailableLocal) ServeLocal(*reads.Request) (reads.Response, bool) {
	return reads.Response{ErrorCode: apierr.ReadUnavailable, Error: "the projection is being rebuilt from the log; retry later"}, true
}

// TestALocalProjectorThatCannotServeHandsTheReadOn: the projector in the
// process answers read_unavailable (rebuilding, its store failing); the
// read goes to a replica over the broker, as a replica's read_unavailable
// is asked again there. It was answered to the client: a 503 while another
// replica held the data.
func TestALocalProjectorThatCannotServeHandsTheReadOn(t *testing.T) {
	b := brokertest.Start(t)
	answerer(t, b.NC, func(m *nats.Msg, answer []byte, req reads.Request) []chunk { return split(b.NC, answer) })
	f, err := readfwd.New(context.Background(), b.NC, 5*time.Second, unavailableLocal{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"}); aerr != nil {
		t.Fatalf("%v, while a replica over the broker answers", aerr)
	}
}

// TestStatusHearsEveryReplica: Status asks every replica at once and
// takes the best answer: one within the bound, whatever answered before
// it; with none within the bound the one least behind, a running fold
// before a stopped one; and a refusal (a replica rebuilding) only when no
// replica said more.
func TestStatusHearsEveryReplica(t *testing.T) {
	b := brokertest.Start(t)
	replica := func(answer string) {
		t.Helper()
		sub, err := b.NC.Subscribe(reads.Subject(reads.ProjectorStatus), func(m *nats.Msg) { _ = m.Respond([]byte(answer)) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	status := func(data string) string { return string(reads.EncodeResponse([]byte(data))) }
	replica(`{"error_code":"read_unavailable","error":"rebuilding"}`)
	replica(status(`{"applied":90,"lag":0,"error":"fold stopped"}`))
	replica(status(`{"applied":50,"lag":50000}`))
	replica(status(`{"applied":70,"lag":30000}`))
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	f := forwarder(t, b.NC, time.Second)
	st, err := f.Status(t.Context(), 10)
	if err != nil || st.Applied != 70 || st.Error != "" {
		t.Fatalf("none within the bound: %+v %v; want the running fold least behind (applied 70)", st, err)
	}
	replica(status(`{"applied":99,"lag":3}`))
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if st, err := f.Status(t.Context(), 10); err != nil || st.Applied != 99 {
			t.Fatalf("one replica within the bound: %+v %v; want its answer (applied 99)", st, err)
		}
	}
}

// TestAReadTakenByAHungReplicaIsAskedAgain: a replica that hangs (a stopped
// process keeps its subscription until the server's pings find it) takes
// the read it is handed and never answers; the front asks again after a
// second, and the queue group's other replica answers. One ask alone
// waited for the read's whole deadline and failed 503 read_unavailable:
// with two replicas, one hung, half of all reads.
func TestAReadTakenByAHungReplicaIsAskedAgain(t *testing.T) {
	b := brokertest.Start(t)
	hungConn, _ := b.Conn(t)
	taken := make(chan struct{}, 1)
	hung, err := hungConn.QueueSubscribe(reads.Subject(reads.ThingGet), reads.QueueGroup, func(*nats.Msg) {
		select {
		case taken <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := hungConn.Flush(); err != nil {
		t.Fatal(err)
	}
	f := forwarder(t, b.NC, 20*time.Second)
	type result struct {
		data []byte
		err  *apierr.Error
	}
	done := make(chan result, 1)
	go func() {
		data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "size-3"})
		done <- result{data, aerr}
	}()
	<-taken // the hung replica, alone in the group, has the first ask
	// Now the other replica is the one the group has.
	if err := hung.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := hungConn.Flush(); err != nil {
		t.Fatal(err)
	}
	answerer(t, b.NC, func(_ *nats.Msg, answer []byte, _ reads.Request) []chunk { return []chunk{{data: answer}} })
	r := <-done
	if r.err != nil || !bytes.Contains(r.data, []byte(`"xxx"`)) {
		t.Fatalf("read whose first ask a hung replica took: %s %v, want the other replica's answer", r.data, r.err)
	}
}
