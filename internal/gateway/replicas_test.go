package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/readfwd"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// replicaChannel is the channel of the operations these tests append
// straight to the log.
const replicaChannel = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

// appendMessages appends n message operations to the log, as ingest
// would, and returns the last one's sequence.
func appendMessages(t *testing.T, js jetstream.JetStream, from, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last jetstream.PubAckFuture
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("m%d", i)
		payload, _ := json.Marshal(ops.MessagePayload{MessageID: id, Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
		env, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: replicaChannel, OpID: "op-" + id, EntityID: id,
			AcceptedAt: 1713750000007, Payload: payload})
		f, err := js.PublishAsync(streams.OpSubject(replicaChannel, ops.KindMessage, id), env)
		if err != nil {
			t.Fatal(err)
		}
		last = f
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("appends not acknowledged")
	}
	select {
	case ack := <-last.Ok():
		return ack.Sequence
	case err := <-last.Err():
		t.Fatal(err)
	}
	return 0
}

// startReplica starts a projector replica serving reads on nc; its close
// releases gate first (when not nil), whose held connection would hold
// the close up.
func startReplica(t *testing.T, nc *nats.Conn, gate *stallGate, cfg projector.Config) *projector.Projector {
	t.Helper()
	cfg.InMemory, cfg.Serve, cfg.FoldPartitions = true, true, 1
	p, err := projector.Start(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gate != nil {
			gate.release()
		}
		_ = p.Close()
	})
	return p
}

// until polls cond (a condition that becomes true and stays so) for up to
// 20 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20 s: %s", what)
		}
	}
}

// TestIngestReadyWhileOneProjectorReplicaIsFarBehind: with two projector
// replicas, one caught up and one far behind the log (held there: its
// folds' connection stalled part way through its catch-up), ingest's
// /readyz answers 200 every time, and 503 naming the lag once the
// caught-up one is gone. It asked one replica, whichever the queue group
// picked, and answered 503 about half the time: under Kubernetes every
// ingest replica flapped out of its load balancer while reads went on
// (handed to the caught-up replica).
func TestIngestReadyWhileOneProjectorReplicaIsFarBehind(t *testing.T) {
	const maxLag = 1000
	b := brokertest.Start(t)
	last := appendMessages(t, b.JS, 0, 5*maxLag)

	ncA, _ := b.Conn(t)
	a := startReplica(t, ncA, nil, projector.Config{})
	until(t, "replica A folds the log", func() bool { return a.Applied() >= last })

	// B's folds get the first 32 KiB from the broker (the handshake, the
	// consumers, a few dozen operations), then nothing: it stays far
	// behind, and answers.
	ncB, gate := stallableConn(t, b)
	gate.stallAfter(32 << 10)
	bRep := startReplica(t, ncB, gate, projector.Config{})
	until(t, "replica B is told how far behind it is", func() bool { return bRep.Lag() > maxLag })

	ncI, _ := b.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := ingest.Start(ctx, ncI, ingest.Config{Streams: streams.DefaultOptions(), MaxProjectorLag: maxLag,
		Argon2: registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	o := newOpsServer(ncI, 0, nil, func() *projector.Projector { return nil })
	if err := o.add("ingest", svc.Ready); err != nil {
		t.Fatal(err)
	}
	readyz := func() (int, string) {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, w.Body.String()
	}

	for i := range 32 {
		if code, body := readyz(); code != http.StatusOK {
			t.Fatalf("/readyz %d of 32, replica A caught up, B %d operations behind: %d %s", i+1, bRep.Lag(), code, body)
		}
	}
	if lag := bRep.Lag(); lag <= maxLag {
		t.Fatalf("replica B caught up during the checks (lag %d): the test proved nothing", lag)
	}

	// The bound still holds: with B alone, ingest is not ready.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "projector lag") {
		t.Fatalf("/readyz with replica B alone, %d operations behind: %d %s; want 503 naming the lag", bRep.Lag(), code, body)
	}
}

// publishSummary appends a delivery summary of the operation at seq (op_id
// opID, message id) to the receipts stream, as a pusher partition
// reports: audience 2, sent of them sent and the rest retrying. It
// returns the receipt's sequence.
func publishSummary(t *testing.T, js jetstream.JetStream, seq uint64, opID, id string, sent int) uint64 {
	t.Helper()
	r := delivery.Receipt{Kind: delivery.KindSummary, At: 1713750001000 + int64(sent), BatchID: fmt.Sprintf("b%d", sent),
		Summaries: []delivery.Summary{{ChannelID: replicaChannel, OpID: opID, Seq: seq, EntityType: ops.KindMessage, EntityID: id,
			AcceptedAt: 1713750000007, At: 1713750001000 + int64(sent), Audience: 2, Sent: sent, Retrying: 2 - sent}}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(context.Background(), streams.SummariesSubject, data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// progress orders send statuses: accepted, processing, then an end; and
// within one, by deliveries ended.
func progress(st delivery.SendStatus) (rank, ended int) {
	switch st.Status {
	case delivery.StatusAccepted:
		rank = 0
	case delivery.StatusProcessing:
		rank = 1
	default:
		rank = 2
	}
	return rank, st.Deliveries.Sent + st.Deliveries.Failed
}

// TestSendStatusNeverGoesBackAcrossReplicas: with two projector replicas,
// one of which has not folded the last receipt (its folds' connection
// stalled, a few receipts behind, far from the 10,000 at which it hands
// /send_status on), /send_status never reports less progress after it
// reported more: the replica behind waits for the receipts appended
// before the read (and answers 503 projection_lagging when they do not
// come in its read wait), and once it has them it answers as the other.
// It answered at once from the receipts it had: processing right after
// the other replica had answered sent.
func TestSendStatusNeverGoesBackAcrossReplicas(t *testing.T) {
	b := brokertest.Start(t)
	seq := appendMessages(t, b.JS, 0, 1)
	const opID, id = "op-m0", "m0"

	ncA, _ := b.Conn(t)
	a := startReplica(t, ncA, nil, projector.Config{})
	ncB, gate := stallableConn(t, b)
	bRep := startReplica(t, ncB, gate, projector.Config{ReadWait: 200 * time.Millisecond})
	r1 := publishSummary(t, b.JS, seq, opID, id, 1) // processing
	until(t, "both replicas fold the operation and the first receipt", func() bool {
		return a.Applied() >= seq && bRep.Applied() >= seq && a.ReceiptsApplied() >= r1 && bRep.ReceiptsApplied() >= r1
	})
	gate.stallAfter(0)
	r2 := publishSummary(t, b.JS, seq, opID, id, 2) // sent
	until(t, "replica A folds the last receipt", func() bool { return a.ReceiptsApplied() >= r2 })

	ncI, _ := b.Conn(t)
	f, err := readfwd.New(context.Background(), ncI, 5*time.Second, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		seen      delivery.SendStatus
		best      [2]int
		answers   []string
		deadline  = time.Now().Add(30 * time.Second)
		bAnswered = func(n uint64) func() bool {
			from := bRep.ServedReads()
			return func() bool { return bRep.ServedReads() >= from+n }
		}
	)
	// ask reads the status until done, failing on an answer of less
	// progress than one before it.
	ask := func(done func() bool, lag bool) {
		t.Helper()
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("not done within 30 s; answers %v", answers)
			}
			data, aerr := f.Read(context.Background(), &reads.Request{Route: reads.SendStatus, OpID: opID})
			if aerr != nil {
				if !lag || aerr.Code != apierr.ProjectionLagging {
					t.Fatalf("send status: %v (answers so far %v)", aerr, answers)
				}
				answers = append(answers, string(aerr.Code))
				continue
			}
			var st delivery.SendStatus
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatal(err)
			}
			answers = append(answers, st.Status)
			rank, ended := progress(st)
			if rank < best[0] || ended < best[1] {
				t.Fatalf("send status went back: %s with %+v after %s with %+v (answers %v)",
					st.Status, st.Deliveries, seen.Status, seen.Deliveries, answers)
			}
			best, seen = [2]int{rank, ended}, st
		}
	}
	// Until an answer says sent (replica A's), then until replica B has
	// been asked three times more.
	ask(func() bool { return seen.Status == delivery.StatusSent }, true)
	ask(bAnswered(3), true)
	t.Logf("while replica B lacks the last receipt: %v", answers)

	// B gets the receipt: every answer is sent, B's too.
	gate.release()
	until(t, "replica B folds the last receipt", func() bool { return bRep.ReceiptsApplied() >= r2 })
	answers = nil
	ask(bAnswered(3), false)
	for _, s := range answers {
		if s != delivery.StatusSent {
			t.Fatalf("once both replicas folded every receipt: %v, want sent every time", answers)
		}
	}
}
