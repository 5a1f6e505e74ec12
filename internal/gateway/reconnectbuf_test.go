package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/schemas/streams"
)

// switchProxy forwards TCP connections from its own address to target
// while it is up; down closes every connection and refuses new ones until
// up, so a client sees its broker gone and back on the same address.
type switchProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	live   bool
	conns  map[net.Conn]struct{}
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target, live: true, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.down() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if !p.live {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *switchProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *switchProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = false
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *switchProxy) up() {
	p.mu.Lock()
	p.live = true
	p.mu.Unlock()
}

// An append made while the connection to the broker is down is answered
// 503 and never lands: the client does not buffer it to send on
// reconnection (nats.go's default keeps 8 MiB of publishes and sends them
// when the connection is back, long after their 503, so a message a
// sender was told was not accepted, and retried, was stored twice).
func TestAppendWhileDisconnectedNeverLands(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	proxy := newSwitchProxy(t, b.ClientURL()[len("nats://"):])
	cfg := Defaults()
	cfg.NATSURL, cfg.NATSCreds = proxy.url(), b.CredentialsFile(broker.RoleAll)
	cfg.DataDir, cfg.HTTPAddr, cfg.Target = t.TempDir(), "127.0.0.1:0", "ingest"
	cfg.AppendTimeout = 300 * time.Millisecond
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	c := apitest.New("http://" + g.Addr())
	pw := "correct-horse"
	ch := apitest.MustOK(t, c.Post(t, "/channel/create", map[string]any{"channel_name": "x", "password": pw})).Str("channel_id")
	msg := map[string]any{"channel_id": ch, "password": pw, "title": "t", "body": "b"}
	apitest.MustOK(t, c.Post(t, "/message", msg)) // the password is proven, the connection warm

	waitStatus := func(want nats.Status) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for g.nc.Status() != want {
			if time.Now().After(deadline) {
				t.Fatalf("connection %v, want %v", g.nc.Status(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	proxy.down()
	waitStatus(nats.RECONNECTING)
	if rep := c.Post(t, "/message", msg); rep.Status != 503 {
		t.Fatalf("/message with the broker unreachable: %s, want 503", rep)
	}
	proxy.up()
	waitStatus(nats.CONNECTED)
	// A message after the reconnection: anything buffered before it was
	// sent before it, so once it is stored the count is final.
	apitest.MustOK(t, c.Post(t, "/message", msg))
	_, js := b.Conn(t)
	info, err := js.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the log holds %d messages, want 2 (the 503's was stored after all)", n)
	}
}
