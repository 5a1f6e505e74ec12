package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// serveWatched starts a whole gateway on its embedded broker, checking its
// streams every few milliseconds, serves it, and returns it, a JetStream
// client of the broker's admin, and what Serve returns (once it returns)
// after its first check of the streams.
func serveWatched(t *testing.T) (*Gateway, jetstream.JetStream, <-chan error) {
	t.Helper()
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	cfg.streamCheckEvery = 20 * time.Millisecond
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		served <- g.Serve(ctx)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("Serve did not return within a minute of its stop")
		}
	})
	nc, err := g.broker.ConnectAs(broker.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitChecks(t, g, 1)
	return g, js, served
}

// waitChecks waits until g's streams were found unchanged n more times.
func waitChecks(t *testing.T, g *Gateway, n int64) {
	t.Helper()
	want := g.streamChecks.Load() + n
	for deadline := time.Now().Add(time.Minute); g.streamChecks.Load() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the streams were checked %d times in a minute, want %d", g.streamChecks.Load(), want)
		}
	}
}

// wantEnded waits for Serve to return an error that says what.
func wantEnded(t *testing.T, served <-chan error, what ...string) {
	t.Helper()
	select {
	case err := <-served:
		for _, w := range what {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("Serve returned %v, want an error saying %q", err, w)
			}
		}
	case <-time.After(time.Minute):
		t.Fatal("the process still serves a minute after")
	}
}

// A bucket deleted and created again under a running process (an operator
// wiping the broker) ends the process: its views would resume after
// revisions the new bucket starts again below, stale for good while
// saying they are current. Its orchestrator's restart loads it afresh.
func TestARecreatedBucketEndsTheProcess(t *testing.T) {
	g, js, served := serveWatched(t)
	waitChecks(t, g, 2) // the process runs with its streams unchanged
	select {
	case err := <-served:
		t.Fatalf("Serve returned with the streams unchanged: %v", err)
	default:
	}
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, streams.ChannelsBucket); err != nil {
		t.Fatal(err)
	}
	if err := provision.Ensure(ctx, js, g.cfg.StreamOptions()); err != nil { // as a fresh process would
		t.Fatal(err)
	}
	wantEnded(t, served, "broker streams", "KV_"+streams.ChannelsBucket, "created again")
}

// A stream deleted under a running process ends it too, once the stream
// has been missing for a few checks (a restarting broker may say so for a
// moment).
func TestADeletedStreamEndsTheProcess(t *testing.T) {
	_, js, served := serveWatched(t)
	if err := js.DeleteStream(context.Background(), streams.Receipts); err != nil {
		t.Fatal(err)
	}
	wantEnded(t, served, "broker streams", streams.Receipts, "deleted")
}
