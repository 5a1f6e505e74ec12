// Package broker runs the embedded NATS JetStream server: the one-command
// run of the gateway and every test use it, with the same limits and
// durability settings, so tests exercise the production configuration.
//
// The server is locked: it admits only the nkeys of the roles (Role),
// whose seeds it generates into its credentials directory on first start,
// and lets each role publish and subscribe to what its service needs; only
// ingest may append operations. Remote is how a process presents
// credentials (and TLS) to a broker it did not start.
//
// It lives in schemas because every service module needs it for its tests
// and schemas is the one module they all share.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/filelock"
)

// Sync is the durability of acknowledged writes on the embedded server.
type Sync struct {
	// Always fsyncs every write before the PubAck: survives power loss.
	Always bool
	// Interval between fsyncs when !Always: survives any process crash
	// (the write is in the OS page cache before the ack), may lose the last
	// interval on power loss.
	Interval time.Duration
}

func (s Sync) String() string {
	if s.Always {
		return "always"
	}
	return s.Interval.String()
}

// ParseSync parses PUSHGO_SYNC: "always" or a Go duration such as "1s".
func ParseSync(v string) (Sync, error) {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "always") {
		return Sync{Always: true, Interval: 2 * time.Minute}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return Sync{}, fmt.Errorf("PUSHGO_SYNC %q: want \"always\" or a positive duration", v)
	}
	return Sync{Interval: d}, nil
}

// Config configures the embedded server. Zero fields take the defaults
// documented on each; Validate reports values out of range.
type Config struct {
	// Dir holds the JetStream store. Required.
	Dir string
	// Listen is the client address ("127.0.0.1:4222"), or "off" (or empty)
	// for in-process connections only.
	Listen string
	// Sync is the write durability. Default: 1s interval.
	Sync Sync
	// MaxMemory bounds JetStream memory storage. Default 256 MiB.
	MaxMemory int64
	// MaxStore bounds JetStream file storage. Default 10 GiB.
	MaxStore int64
	// ServerName names the node (cluster members need distinct names).
	ServerName string
	// Cluster, when set, joins a cluster: ClusterName, ClusterListen
	// (host:port) and Routes (nats-route://host:port URLs).
	ClusterName   string
	ClusterListen string
	Routes        []string
	// CredentialsDir holds the roles' nkey seeds (<role>.nk, mode 0600;
	// see Role), generated on first start: the server admits no other
	// client. Default: <Dir>/credentials.
	CredentialsDir string
	// Logger receives the server's warnings and errors. Default: discard.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Sync == (Sync{}) {
		c.Sync = Sync{Interval: time.Second}
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = 256 << 20
	}
	if c.MaxStore == 0 {
		c.MaxStore = 10 << 30
	}
	if c.ServerName == "" {
		c.ServerName = "pushgo"
	}
	if c.CredentialsDir == "" && c.Dir != "" {
		c.CredentialsDir = filepath.Join(c.Dir, "credentials")
	}
}

// Validate reports a configuration that cannot start.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("broker: Dir is required")
	}
	if c.MaxMemory < 0 || c.MaxStore < 0 {
		return errors.New("broker: limits must not be negative")
	}
	if c.Listen != "" && c.Listen != "off" {
		if err := CheckListen(c.Listen); err != nil {
			return fmt.Errorf("broker: listen %q: %w", c.Listen, err)
		}
	}
	return nil
}

// CheckListen checks the form of a client or cluster address the server
// listens on: host:port, the port a number from 0 to 65535 (the NATS
// server takes no service name).
func CheckListen(addr string) error {
	_, _, err := splitHostPort(addr)
	return err
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// Embedded is a running embedded server. The caller MUST call Shutdown.
type Embedded struct {
	srv        *server.Server
	dir        string // the store
	log        *slog.Logger
	disk       diskGauge
	creds      *credentials
	unlock     func() error // the store's lock (lockStore)
	unlockOnce sync.Once
}

// Start starts the server and waits until it accepts connections and
// JetStream is ready. It installs no signal handlers: the process owns them.
// The server admits only the roles' credentials (cfg.CredentialsDir),
// in process and over TCP alike.
func Start(cfg Config) (*Embedded, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	unlock, err := lockStore(cfg.Dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	e, err := start(cfg)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	e.unlock = unlock
	return e, nil
}

// ClientPingInterval and ClientMaxPingsOut are how often the server pings
// a client and how many pings it may leave unanswered before the server
// drops it: the embedded broker's, and deploy/nats/nats.conf's.
const (
	ClientPingInterval = 5 * time.Second
	ClientMaxPingsOut  = 3
)

// ErrStoreInUse is Start's answer for a store another process's server
// runs on (errors.Is).
var ErrStoreInUse = errors.New("broker: the store is in use by another process")

// StoreLockFile is the lock file of the store in dir: whoever holds it
// runs a server on that store.
func StoreLockFile(dir string) string { return filepath.Join(dir, "pushgo.lock") }

// lockStore claims the store in dir for this server's life. The NATS
// server takes no lock of its own: a second server started on a running
// one's store (a second gateway on the same data directory, on other
// ports) opened it, found the stream's state files behind the running
// server's writes and rebuilt them from under it. Where file locks are
// not supported (not unix, or a file system without flock: some NFS and
// FUSE mounts) the store is not claimed, and a warning says so.
func lockStore(dir string, log *slog.Logger) (unlock func() error, err error) {
	unlock, err = filelock.Lock(StoreLockFile(dir))
	switch {
	case errors.Is(err, filelock.ErrHeld):
		return nil, fmt.Errorf("%w: %s (its lock %s is held)", ErrStoreInUse, dir, StoreLockFile(dir))
	case errors.Is(err, filelock.ErrUnsupported):
		if log != nil {
			log.Warn("broker: the store cannot be locked here; make sure no other process runs a server on it", "dir", dir, "err", err)
		}
		return func() error { return nil }, nil
	case err != nil:
		return nil, fmt.Errorf("broker: lock the store %s: %w", dir, err)
	}
	return unlock, nil
}

// start starts the server on a store already claimed.
func start(cfg Config) (*Embedded, error) {
	creds, err := loadCredentials(cfg.CredentialsDir)
	if err != nil {
		return nil, err
	}
	users, err := creds.nkeyUsers()
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.Dir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		SyncAlways:         cfg.Sync.Always,
		SyncInterval:       cfg.Sync.Interval,
		NoSigs:             true,
		NoLog:              cfg.Logger == nil,
		MaxPayload:         1 << 20,
		Nkeys:              users,
		// A client that hangs (a stopped process attached over TCP: a
		// projector replica answering reads in a queue group) keeps its
		// socket; the server drops it only when it misses pings, and
		// until then hands it its share of the reads, which time out. At
		// the default (2 minutes, two missed) that lasted four minutes; at
		// ClientPingInterval it ends within about 20 s.
		PingInterval: ClientPingInterval,
		MaxPingsOut:  ClientMaxPingsOut,
	}
	if cfg.Listen == "" || cfg.Listen == "off" {
		opts.DontListen = true
	} else {
		h, p, _ := splitHostPort(cfg.Listen)
		if p == 0 { // port 0 asks for any free port, as net.Listen does
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = h, p
	}
	if cfg.ClusterName != "" {
		h, p, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster listen %q: %w", cfg.ClusterListen, err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = h, p
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: new server: %w", err)
	}
	log := newServerLog(cfg.Logger)
	srv.SetLoggerV2(log, false, false, false)
	srv.Start()
	if err := awaitReady(srv, log, 30*time.Second); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	elog := cfg.Logger
	if elog == nil {
		elog = discardLogger
	}
	return &Embedded{srv: srv, dir: cfg.Dir, log: elog, creds: creds}, nil
}

// Connect opens an in-process client connection (no TCP) as RoleAdmin,
// unrestricted: for tests and tools. A service connects with ConnectAs
// and its role. The caller MUST close it.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return e.ConnectAs(RoleAdmin, opts...)
}

// ConnectAs opens an in-process client connection (no TCP) with the
// credentials of role r. The caller MUST close it.
func (e *Embedded) ConnectAs(r Role, opts ...nats.Option) (*nats.Conn, error) {
	kp, ok := e.creds.keys[r]
	if !ok {
		return nil, fmt.Errorf("broker: unknown role %q", r)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("broker: credentials of %s: %w", r, err)
	}
	opts = append([]nats.Option{nats.InProcessServer(e.srv), nats.Name("pushgo-inproc"), nats.Nkey(pub, kp.Sign)}, opts...)
	return nats.Connect("", opts...)
}

// CredentialsFile is the nkey seed file of role r, for a process or tool
// that connects over TCP (nats.NkeyOptionFromSeed, PUSHGO_NATS_CREDS, the
// nats CLI's --nkey).
func (e *Embedded) CredentialsFile(r Role) string { return CredentialsFile(e.creds.dir, r) }

// ClientURL is the TCP URL of the client port ("" when not listening).
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Server exposes the underlying server for tests that need to inspect it.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server, waits for it to finish and releases its
// store.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.unlockOnce.Do(func() {
		if e.unlock != nil {
			_ = e.unlock()
		}
	})
}
