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
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/ops"
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
	o := newOpsServer(ncI, 0, func() *projector.Projector { return nil })
	if err := o.add("ingest", svc.Ready); err != nil {
		t.Fatal(err)
	}
	readyz := func() (int, string) {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, w.Body.String()
	}

	servedB := bRep.ServedReads()
	for i := range 32 {
		if code, body := readyz(); code != http.StatusOK {
			t.Fatalf("/readyz %d of 32, replica A caught up, B %d operations behind: %d %s", i+1, bRep.Lag(), code, body)
		}
	}
	if lag := bRep.Lag(); lag <= maxLag {
		t.Fatalf("replica B caught up during the checks (lag %d): the test proved nothing", lag)
	}
	if bRep.ServedReads() == servedB {
		t.Fatal("replica B was never asked its status: the test proved nothing")
	}

	// The bound still holds: with B alone, ingest is not ready.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "projector lag") {
		t.Fatalf("/readyz with replica B alone, %d operations behind: %d %s; want 503 naming the lag", bRep.Lag(), code, body)
	}
}
