package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
)

// credentialsDir is where the embedded broker keeps the roles' nkey seeds
// and where a process of the same data directory finds its own.
func (c Config) credentialsDir() string { return filepath.Join(c.DataDir, "credentials") }

// connectBroker starts the embedded broker (no PUSHGO_NATS_URL) or reaches
// the external one, connects with the credentials of the process's role
// (its target), and makes sure the streams and buckets exist: a role that
// may create them ensures them, the others wait for an ingest process to.
func (g *Gateway) connectBroker(ctx context.Context) error {
	cfg, log := g.cfg, g.log
	role, err := broker.ParseRole(cfg.Target)
	if err != nil {
		return err
	}
	onErr := nats.ErrorHandler(asyncErrorLogger(log, role))
	// Nothing is buffered while the connection is down: a publish then
	// fails at once. nats.go's default keeps up to 8 MiB of publishes and
	// sends them when the connection is back, long after the requests that
	// made them were answered 503 ("not accepted"): a sender's retry and
	// the late original were both stored. (An ack then lost is a
	// redelivery, which every consumer here takes.)
	noReconnectBuffer := nats.ReconnectBufSize(-1)
	if cfg.NATSURL == "" {
		dir := filepath.Join(cfg.DataDir, "jetstream")
		g.broker, err = broker.Start(broker.Config{
			Dir: dir, CredentialsDir: cfg.credentialsDir(), Listen: cfg.NATSListen, Sync: cfg.Sync,
			MaxStore: cfg.MaxStore, MaxMemory: cfg.MaxMemory, Logger: log.With("component", "nats"),
		})
		if errors.Is(err, broker.ErrStoreInUse) {
			return fmt.Errorf("start embedded broker: %w: another pushgo runs on PUSHGO_DATA_DIR=%s; stop it, give this one "+
				"another PUSHGO_DATA_DIR, or attach this one to its broker with PUSHGO_NATS_URL", err, cfg.DataDir)
		}
		if err != nil {
			return fmt.Errorf("start embedded broker: %w", err)
		}
		log.Info("embedded broker started", "dir", dir, "client_url", g.broker.ClientURL(), "credentials", cfg.credentialsDir(), "sync", cfg.Sync.String())
		if !role.ManagesStreams() { // the process owns the broker: it provisions what its role only uses
			if err := provisionAs(ctx, g.broker, cfg); err != nil {
				return err
			}
		}
		g.nc, err = g.broker.ConnectAs(role, nats.MaxReconnects(-1), noReconnectBuffer, onErr)
	} else {
		if len(cfg.embeddedOnly) > 0 {
			// An operator who set PUSHGO_SYNC=always on a cluster for
			// power-loss safety did not get it, and nothing said so.
			log.Warn("settings of the embedded broker have no effect with PUSHGO_NATS_URL: the cluster's own configuration decides (nats.conf: sync_interval, max_file_store, listen)",
				"ignored", strings.Join(cfg.embeddedOnly, ","))
		}
		remote := broker.Remote{Creds: cfg.NATSCreds, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey}
		if f := broker.CredentialsFile(cfg.credentialsDir(), role); remote.Creds == "" && cfg.DataDir != "" && fileExists(f) {
			remote.Creds = f // a local process of the embedded broker's data directory
		}
		var opts []nats.Option
		if opts, err = remote.Options(); err != nil {
			return err
		}
		opts = append(opts, nats.Name("pushgo-"+string(role)), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
			noReconnectBuffer, onErr,
			nats.PingInterval(cfg.NATSPing), nats.MaxPingsOutstanding(2))
		g.nc, err = nats.Connect(cfg.NATSURL, opts...)
		if errors.Is(err, nats.ErrAuthorization) {
			used := "without credentials"
			if remote.Creds != "" {
				used = "with credentials " + remote.Creds
			}
			err = fmt.Errorf("%w %s (role %s): set PUSHGO_NATS_CREDS to a .creds or nkey seed file, "+
				"or PUSHGO_DATA_DIR to the data directory of the process that runs the embedded broker", err, used, role)
		}
	}
	if err != nil {
		return fmt.Errorf("connect to broker: %w", err)
	}
	js, err := jetstream.New(g.nc)
	if err != nil {
		return err
	}
	if role.ManagesStreams() { // every such process can be the first against a fresh broker
		return provision.EnsureWhenReady(ctx, js, cfg.StreamOptions(), log)
	}
	if g.broker != nil {
		return nil
	}
	return provision.Await(ctx, js, role.Streams(), log)
}

// provisionAs ensures the streams and buckets over a connection of its
// own with the role that may create them, then closes it.
func provisionAs(ctx context.Context, e *broker.Embedded, cfg Config) error {
	nc, err := e.ConnectAs(broker.RoleAll)
	if err != nil {
		return fmt.Errorf("connect to broker: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return provision.Ensure(ctx, js, cfg.StreamOptions())
}

// asyncErrorLogger logs the errors the broker's client reports outside any
// call: a permissions violation is only ever reported this way, and so is
// a slow consumer, which names its subscription and how many messages it
// dropped, since which one fell behind is what an operator needs to know.
func asyncErrorLogger(log *slog.Logger, role broker.Role) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub == nil {
			log.Warn("broker: asynchronous error", "role", role, "err", err)
			return
		}
		dropped, _ := sub.Dropped()
		log.Warn("broker: asynchronous error", "role", role, "subject", sub.Subject, "dropped", dropped, "err", err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
