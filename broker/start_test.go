package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
)

// TestStartSaysWhichPortIsTaken: a broker told to listen on a port
// another process holds (its client port, or its cluster port) does not
// start, and Start's error says so and names the port, instead of a bare
// "not ready" after the readiness timeout.
func TestStartSaysWhichPortIsTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	taken := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, tc := range []struct {
		name string
		cfg  broker.Config
	}{
		{"client port", broker.Config{Listen: taken}},
		{"cluster port", broker.Config{Listen: "127.0.0.1:0", ServerName: "n0", ClusterName: "c",
			ClusterListen: taken, Routes: []string{"nats-route://" + taken}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Dir = t.TempDir()
			e, err := broker.Start(cfg)
			if err == nil {
				e.Shutdown()
				t.Fatalf("started on a port another listener holds (%s)", taken)
			}
			if !errors.Is(err, broker.ErrNotReady) || !errors.Is(err, broker.ErrListen) {
				t.Errorf("error %v does not wrap ErrNotReady and ErrListen", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(port)) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("error %q does not name the taken port %d and the cause", err, port)
			}
		})
	}
}

// TestSecondServerOnAStoreIsRefused: a server started on the store another
// one runs on is refused before it opens anything (the NATS server would
// have opened it and rebuilt the running one's stream state from under
// it), the running one keeps its stream, and the store is free again once
// that one shuts down.
func TestSecondServerOnAStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := broker.Start(broker.Config{Dir: dir, Listen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := first.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s", []byte("kept")); err != nil {
		t.Fatal(err)
	}

	second, err := broker.Start(broker.Config{Dir: dir, Listen: "off"})
	if err == nil {
		second.Shutdown()
		t.Fatal("a second server started on a store another one runs on")
	}
	if !errors.Is(err, broker.ErrStoreInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second start: %v, want ErrStoreInUse naming %s", err, dir)
	}
	if _, err := js.Publish(ctx, "s", []byte("after")); err != nil {
		t.Fatalf("the running server after the refused start: %v", err)
	}
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the running server's stream holds %d messages, want 2", n)
	}
	nc.Close()

	first.Shutdown()
	third, err := broker.Start(broker.Config{Dir: dir, Listen: "off"})
	if err != nil {
		t.Fatalf("start after the first shut down: %v", err)
	}
	defer third.Shutdown()
	nc3, err := third.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc3.Close()
	js3, _ := jetstream.New(nc3)
	s3, err := js3.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if n := s3.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the store holds %d messages after a restart, want 2", n)
	}
}

// TestEmbeddedBrokerDropsHungClients: the embedded broker pings its clients
// every ClientPingInterval and drops one that leaves ClientMaxPingsOut
// unanswered, as deploy/nats/nats.conf does (the server's default, two
// minutes and two missed, kept a hung projector replica in the read queue
// group for four minutes).
func TestEmbeddedBrokerDropsHungClients(t *testing.T) {
	e, err := broker.Start(broker.Config{Dir: t.TempDir(), Listen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	v, err := e.Server().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.PingInterval != broker.ClientPingInterval || v.MaxPingsOut != broker.ClientMaxPingsOut ||
		broker.ClientPingInterval*time.Duration(broker.ClientMaxPingsOut+1) > 30*time.Second {
		t.Fatalf("the server pings clients every %s and drops one after %d missed: want %s and %d, together under 30 s",
			v.PingInterval, v.MaxPingsOut, broker.ClientPingInterval, broker.ClientMaxPingsOut)
	}
}
