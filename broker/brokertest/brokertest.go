// Package brokertest is the broker test fixture every module's tests share:
// a real embedded broker (the production configuration, see package broker)
// in a temporary directory, an in-process connection, a JetStream handle,
// and the gateway's streams and buckets ensured with provision.Ensure.
//
// The broker requires credentials, as in production: NC and Conn connect
// as broker.RoleAdmin (unrestricted), ConnAs with a service's role, and a
// process or client that connects over TCP (Listen) presents
// CredentialsFile(role), e.g. with nats.NkeyOptionFromSeed.
//
// It imports only broker, broker/provision, schemas/streams and the NATS
// client, so any module's tests can use it, the broker module's own
// included, without an import cycle.
package brokertest

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// ensureTimeout bounds provision.Ensure at start.
const ensureTimeout = 30 * time.Second

// Broker is a running embedded broker for one test.
//
// The embedded *broker.Embedded gives Connect, ClientURL, Server and
// Shutdown. Shutdown may be called by the test to stop the broker early
// (a broker-down test); the cleanup registered by Start calls it again,
// which is harmless.
type Broker struct {
	*broker.Embedded
	// NC is an in-process connection as broker.RoleAdmin, closed at
	// cleanup before the broker shuts down.
	NC *nats.Conn
	// JS is a JetStream handle over NC.
	JS jetstream.JetStream

	connect []nats.Option
}

// Option adjusts what Start starts.
type Option func(*options)

type options struct {
	cfg     broker.Config
	streams streams.Options
	ensure  bool
	connect []nats.Option
	late    []int // StartCluster: nodes configured but not started
}

// StartLate makes StartCluster configure node i (its cluster port is in
// every node's routes) but not start it, as a cluster whose last server
// has not come up yet: Restart starts it. The others elect no meta leader
// before it has come up once, so StartCluster neither waits for one nor
// ensures the streams (as NoEnsure).
func StartLate(i int) Option {
	return func(o *options) { o.late = append(o.late, i) }
}

// Listen makes the broker listen for TCP clients on addr
// ("127.0.0.1:0" for any free port), so ClientURL answers its URL, for
// a process or client that connects over the network. By default the
// broker takes in-process connections only.
func Listen(addr string) Option {
	return func(o *options) { o.cfg.Listen = addr }
}

// Streams ensures the streams and buckets with so instead of
// streams.DefaultOptions (e.g. a short retention).
func Streams(so streams.Options) Option {
	return func(o *options) { o.streams = so }
}

// NoEnsure skips provision.Ensure: the streams and buckets are not
// created, for a test whose code under test ensures them itself (as every
// service does at start) or that needs a bare broker.
func NoEnsure() Option {
	return func(o *options) { o.ensure = false }
}

// Dir starts the broker on a store in dir (a SmallDisk) instead of
// t.TempDir().
func Dir(dir string) Option { return func(o *options) { o.cfg.Dir = dir } }

// Logger gives the broker a logger (the server's warnings and errors, and
// the broker's own lines).
func Logger(l *slog.Logger) Option { return func(o *options) { o.cfg.Logger = l } }

// ConnectOptions are passed to the connection NC (after the in-process
// options of broker.Embedded.Connect) and to every connection Conn opens.
func ConnectOptions(opts ...nats.Option) Option {
	return func(o *options) { o.connect = append(o.connect, opts...) }
}

// Start starts an embedded broker in t.TempDir(), connects to it in
// process, opens JetStream and, unless NoEnsure, ensures the streams and
// buckets. Any failure fails t at once (t.Fatal). The connection is closed
// and the broker shut down when t ends (t.Cleanup), in that order.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	o := options{cfg: broker.Config{Dir: t.TempDir()}, streams: streams.DefaultOptions(), ensure: true}
	for _, opt := range opts {
		opt(&o)
	}
	e, err := broker.Start(o.cfg)
	if err != nil {
		t.Fatalf("brokertest: start: %v", err)
	}
	t.Cleanup(e.Shutdown)
	b := &Broker{Embedded: e, connect: o.connect}
	b.NC, b.JS = connect(t, e, o.connect)
	if o.ensure {
		ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
		defer cancel()
		if err := provision.Ensure(ctx, b.JS, o.streams); err != nil {
			t.Fatalf("brokertest: ensure streams and buckets: %v", err)
		}
	}
	return b
}

// Conn opens one more in-process connection (as broker.RoleAdmin) and a
// JetStream handle over it, as a second process (replica) would have; the
// connection is closed when t ends. It fails t if the broker does not
// accept it.
func (b *Broker) Conn(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, b.Embedded, b.connect)
}

// ConnAs is Conn with the credentials, and so the permissions, of role r:
// what a service of that role may do and no more. A publish or request
// the role may not make is refused with an asynchronous permissions
// violation (see nats.ErrorHandler) and gets no answer.
func (b *Broker) ConnAs(t testing.TB, r broker.Role, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, b.Embedded, r, append(slices.Clip(b.connect), opts...))
}

func connect(t testing.TB, e *broker.Embedded, opts []nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, e, broker.RoleAdmin, opts)
}

func connectAs(t testing.TB, e *broker.Embedded, r broker.Role, opts []nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := e.ConnectAs(r, opts...)
	if err != nil {
		t.Fatalf("brokertest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("brokertest: jetstream: %v", err)
	}
	return nc, js
}
