package provision_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// waitLog is a slog handler that hands each record's message to a channel.
type waitLog struct {
	mu   sync.Mutex
	msgs chan string
}

func (h *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *waitLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h *waitLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *waitLog) WithGroup(string) slog.Handler      { return h }

// TestEnsureWaitsForAPeer: on a three-node cluster whose third server has
// not come up yet, the streams' three replicas cannot be placed; one Ensure pass fails with an
// error Transient recognises, and EnsureWhenReady waits (saying so in its
// log) until the server is up, then creates every stream and bucket at
// three replicas. A gateway started beside a cluster still forming used to
// exit on that first refusal.
func TestEnsureWaitsForAPeer(t *testing.T) {
	c := brokertest.StartCluster(t, brokertest.StartLate(2))
	o := streams.DefaultOptions()
	o.Replicas = brokertest.ClusterSize
	_, js := c.Conn(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pass, cancelPass := context.WithTimeout(ctx, 5*time.Second)
	err := provision.Ensure(pass, js, o)
	cancelPass()
	if err == nil || !provision.Transient(err) {
		t.Fatalf("one pass with a server missing: %v, want a transient refusal", err)
	}

	h := &waitLog{msgs: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- provision.EnsureWhenReady(ctx, js, o, slog.New(h)) }()
	select {
	case msg := <-h.msgs:
		if !strings.Contains(msg, "asking again") {
			t.Fatalf("log %q", msg)
		}
	case err := <-done:
		t.Fatalf("EnsureWhenReady returned %v with a server missing", err)
	}
	c.Restart(t, 2)
	if err := <-done; err != nil {
		t.Fatalf("EnsureWhenReady once the server is up: %v", err)
	}
	for _, s := range streams.AllStreams(o) {
		info, err := js.Stream(ctx, s.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", s.Name, err)
		}
		if got := info.CachedInfo().Config.Replicas; got != brokertest.ClusterSize {
			t.Errorf("stream %s: %d replicas", s.Name, got)
		}
	}
	for _, b := range streams.AllBuckets(o) {
		if _, err := js.KeyValue(ctx, b.Name); err != nil {
			t.Errorf("bucket %s: %v", b.Name, err)
		}
	}
}

// TestTransient: what a forming cluster answers is transient; what a
// broker will never accept is not.
func TestTransient(t *testing.T) {
	for code, want := range map[jetstream.ErrorCode]bool{10005: true, 10008: true, 10009: true, 10074: false, 10058: false} {
		err := &jetstream.APIError{ErrorCode: code, Code: 500, Description: "x"}
		if provision.Transient(err) != want {
			t.Errorf("error code %d: transient %v, want %v", code, !want, want)
		}
	}
}
