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

// startWatched starts a whole gateway on its embedded broker, checking its
// streams every few milliseconds, and returns it with a JetStream client
// of the broker's admin.
func startWatched(t *testing.T) (*Gateway, jetstream.JetStream) {
	t.Helper()
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	cfg.streamCheckEvery = 20 * time.Millisecond
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := g.broker.ConnectAs(broker.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return g, js
}

// serve serves g until the test ends and returns what Serve returns (once
// it returns).
func serve(t *testing.T, g *Gateway) <-chan error {
	t.Helper()
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
	return served
}

// serveWatched is startWatched, served, after its first check of the
// streams.
func serveWatched(t *testing.T) (*Gateway, jetstream.JetStream, <-chan error) {
	t.Helper()
	g, js := startWatched(t)
	served := serve(t, g)
	waitChecks(t, g, 1)
	return g, js, served
}

// recreateChannelsBucket deletes the channels bucket and creates it again,
// as a fresh process would (alone: the other buckets stay).
func recreateChannelsBucket(t *testing.T, g *Gateway, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, streams.ChannelsBucket); err != nil {
		t.Fatal(err)
	}
	o := g.cfg.StreamOptions()
	for _, b := range streams.AllBuckets(o) {
		if b.Name == streams.ChannelsBucket {
			if _, err := js.CreateKeyValue(ctx, provision.BucketConfig(b, o)); err != nil {
				t.Fatal(err)
			}
		}
	}
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
	recreateChannelsBucket(t, g, js)
	wantEnded(t, served, "broker streams", "KV_"+streams.ChannelsBucket, "created again")
}

// A bucket created again after the process started and before it serves
// ends it as well: its views were loaded at its start, from the bucket
// that was (the streams' creation times are read before its services
// start, not at the first check).
func TestABucketRecreatedBeforeServingEndsTheProcess(t *testing.T) {
	g, js := startWatched(t)
	recreateChannelsBucket(t, g, js)
	wantEnded(t, serve(t, g), "broker streams", "KV_"+streams.ChannelsBucket, "created again")
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
