package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
)

// lockedBuffer is a log sink a test reads while the gateway writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProcessesConnectWithTheirRole: processes of a split deployment
// reach a locked broker with their target's credentials (PUSHGO_NATS_CREDS,
// or the data directory's of the embedded broker); a projector that
// starts before any ingest process waits for the streams (its role may
// not create them) and starts once an ingest process has; a process
// without credentials stops with one line saying what to set.
func TestProcessesConnectWithTheirRole(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	cfgFor := func(target string, creds string) Config {
		cfg := Defaults()
		cfg.NATSURL, cfg.HTTPAddr, cfg.DataDir, cfg.Target, cfg.NATSCreds = b.ClientURL(), "127.0.0.1:0", t.TempDir(), target, creds
		return cfg
	}

	cfg := cfgFor("pusher", "")
	if g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil {
		g.Close(context.Background())
		t.Fatal("a pusher without credentials started")
	} else if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "PUSHGO_NATS_CREDS") {
		t.Fatalf("a pusher without credentials: %v, want an authorization violation naming PUSHGO_NATS_CREDS", err)
	}

	logs := &lockedBuffer{}
	started := make(chan error, 1)
	gateway := make(chan *Gateway, 1)
	projCtx, stopWaiting := context.WithCancel(context.Background())
	// Whichever way the test ends, the projector it started is stopped
	// (or its start given up) before the test's end.
	t.Cleanup(func() {
		stopWaiting()
		if g := <-gateway; g != nil {
			_ = g.Close(context.Background())
		}
	})
	go func() {
		g, err := Start(projCtx, cfgFor("projector", b.CredentialsFile(broker.RoleProjector)), slog.New(slog.NewTextHandler(logs, nil)))
		gateway <- g
		started <- err
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "waiting for a stream"); {
		select {
		case err := <-started:
			t.Fatalf("the projector did not wait for the streams: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the projector does not say it waits for the streams:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ing, err := Start(context.Background(), cfgFor("ingest", b.CredentialsFile(broker.RoleIngest)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("ingest with its credentials: %v", err)
	}
	defer ing.Close(context.Background())
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("the projector, once ingest created the streams: %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the projector did not start after ingest created the streams:\n%s", logs)
	}

	// A pusher of the embedded broker's data directory needs nothing else.
	e, err := Start(context.Background(), func() Config {
		c := Defaults()
		c.HTTPAddr, c.NATSListen, c.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
		return c
	}(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	cfg = cfgFor("pusher", "")
	cfg.NATSURL, cfg.DataDir = e.NATSURL(), e.cfg.DataDir
	p, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a pusher of the embedded broker's data directory: %v", err)
	}
	p.Close(context.Background())
	if strings.Contains(logs.String(), "permissions violation") {
		t.Fatalf("a permissions violation in the projector's work:\n%s", logs)
	}
}
