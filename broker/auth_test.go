package broker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/streams"
)

// violations returns an option that collects a connection's asynchronous
// errors, and the channel they arrive on.
func violations() (nats.Option, <-chan error) {
	ch := make(chan error, 64)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case ch <- err:
		default:
		}
	}), ch
}

// expectViolation publishes to subject over nc and waits for the broker's
// permissions violation naming it.
func expectViolation(t *testing.T, nc *nats.Conn, errs <-chan error, subject string) {
	t.Helper()
	if err := nc.Publish(subject, []byte(`{"forged":true}`)); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-deadline:
			t.Fatalf("publish to %s: no permissions violation", subject)
		}
	}
}

// TestUnauthenticatedRefused: the embedded server admits no TCP
// connection without a role's credentials, nor one with a key it does not
// know. (Before, any local process could connect to
// 127.0.0.1:4222 and read every password hash, device and provider token,
// and append operations.)
func TestUnauthenticatedRefused(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"))
	if nc, err := nats.Connect(b.ClientURL(), nats.Timeout(5*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("TCP connection without credentials: %v, want an authorization violation", err)
	}
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := stranger.PublicKey()
	if nc, err := nats.Connect(b.ClientURL(), nats.Nkey(pub, stranger.Sign)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("TCP connection with an unknown key: %v, want an authorization violation", err)
	}
	// The role's seed file is what a local process presents.
	opt, err := nats.NkeyOptionFromSeed(b.CredentialsFile(broker.RolePusher))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), opt)
	if err != nil {
		t.Fatalf("TCP connection with the pusher's seed file: %v", err)
	}
	nc.Close()
}

// TestOnlyIngestAppends: a projector or pusher connection cannot append
// to the operations log (a permissions violation, nothing stored), nor
// read what its service never needs (the channels' password hashes, the
// devices); an ingest connection appends.
func TestOnlyIngestAppends(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"))
	subject := streams.OpSubject("01HZZZZZZZZZZZZZZZZZZZZZZZ", "event", "forged")
	channels := "$JS.API.DIRECT.GET.KV_" + streams.ChannelsBucket + ".$KV." + streams.ChannelsBucket + ".x"
	devices := "$JS.API.DIRECT.GET.KV_" + streams.DevicesBucket + ".$KV." + streams.DevicesBucket + ".x"

	// The pusher over TCP with its seed file, as a -target pusher process.
	opt, err := nats.NkeyOptionFromSeed(b.CredentialsFile(broker.RolePusher))
	if err != nil {
		t.Fatal(err)
	}
	onErr, errs := violations()
	pusher, err := nats.Connect(b.ClientURL(), opt, onErr)
	if err != nil {
		t.Fatal(err)
	}
	defer pusher.Close()
	expectViolation(t, pusher, errs, subject)
	expectViolation(t, pusher, errs, channels)
	expectViolation(t, pusher, errs, "$JS.API.STREAM.UPDATE."+streams.Ops)
	expectViolation(t, pusher, errs, "$JS.API.STREAM.CREATE.FORGER")

	onErr, errs = violations()
	projector, _ := b.ConnAs(t, broker.RoleProjector, onErr)
	expectViolation(t, projector, errs, subject)
	expectViolation(t, projector, errs, channels)
	expectViolation(t, projector, errs, devices)

	// What the pusher needs, it may: publish a delivery task and read a
	// device.
	_, pjs := b.ConnAs(t, broker.RolePusher)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pjs.Publish(ctx, streams.DeliverySubject("c", "d"), []byte(`{}`)); err != nil {
		t.Fatalf("pusher: publish a delivery task: %v", err)
	}
	kv, err := pjs.KeyValue(ctx, streams.DevicesBucket)
	if err != nil {
		t.Fatalf("pusher: open the devices bucket: %v", err)
	}
	if _, err := kv.Get(ctx, "nobody"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("pusher: read a device: %v", err)
	}

	for _, r := range []broker.Role{broker.RoleIngest, broker.RoleAll} {
		_, js := b.ConnAs(t, r)
		ack, err := js.Publish(ctx, subject, []byte(`{}`))
		if err != nil {
			t.Fatalf("%s: append: %v", r, err)
		}
		// The forged appends above stored nothing: the first appended
		// operation is sequence 1, the second 2.
		if want := map[broker.Role]uint64{broker.RoleIngest: 1, broker.RoleAll: 2}[r]; ack.Sequence != want {
			t.Fatalf("%s: appended at sequence %d, want %d", r, ack.Sequence, want)
		}
	}
}

// TestCredentialsFiles: the seeds are generated once into the credentials
// directory, readable by the owner only, kept across restarts (a process
// started with them keeps working), never in the server's log; a file
// that is not a seed stops the start with its path.
func TestCredentialsFiles(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := broker.Start(broker.Config{Dir: dir, Listen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	credDir := filepath.Join(dir, "credentials")
	if st, err := os.Stat(credDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("credentials directory: %v %v, want mode 0700", st, err)
	}
	seeds := map[broker.Role][]byte{}
	for _, r := range broker.Roles {
		f := e.CredentialsFile(r)
		if f != broker.CredentialsFile(credDir, r) {
			t.Fatalf("%s: credentials file %s, want it in %s", r, f, credDir)
		}
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, st, err)
		}
		seeds[r], _ = os.ReadFile(f)
		if kp, err := nkeys.ParseDecoratedNKey(seeds[r]); err != nil || kp == nil {
			t.Fatalf("%s: not an nkey seed: %v", f, err)
		}
	}
	e.Shutdown()

	os.Chmod(e.CredentialsFile(broker.RoleAll), 0o644)
	e, err = broker.Start(broker.Config{Dir: dir, Listen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range broker.Roles {
		b, _ := os.ReadFile(e.CredentialsFile(r))
		if !bytes.Equal(b, seeds[r]) {
			t.Fatalf("%s: the seed changed across a restart", r)
		}
	}
	if st, _ := os.Stat(e.CredentialsFile(broker.RoleAll)); st.Mode().Perm() != 0o600 {
		t.Fatalf("a loosened seed file stays %v after a restart, want 0600", st.Mode().Perm())
	}
	opt, err := nats.NkeyOptionFromSeed(e.CredentialsFile(broker.RoleAll))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.ClientURL(), opt)
	if err != nil {
		t.Fatalf("the seed of the first start after a restart: %v", err)
	}
	nc.Close()
	e.Shutdown()
	for r, s := range seeds {
		if bytes.Contains(logged.Bytes(), bytes.TrimSpace(s)) {
			t.Fatalf("the seed of %s is in the server's log", r)
		}
	}

	bad := e.CredentialsFile(broker.RolePusher)
	if err := os.WriteFile(bad, []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := broker.Start(broker.Config{Dir: dir, Listen: "off"}); err == nil || !strings.Contains(err.Error(), bad) {
		if e != nil {
			e.Shutdown()
		}
		t.Fatalf("start with a corrupt seed file: %v, want an error naming %s", err, bad)
	}
}

// TestRemoteOptions: PUSHGO_NATS_CREDS takes an nkey seed file or a
// .creds file; a certificate without its key is refused.
func TestRemoteOptions(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	opts, err := broker.Remote{Creds: b.CredentialsFile(broker.RoleIngest)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect with an nkey seed file: %v", err)
	}
	nc.Close()
	if _, err := (broker.Remote{Creds: filepath.Join(t.TempDir(), "missing.creds")}).Options(); err == nil {
		t.Fatal("a missing credentials file is accepted")
	}
	if _, err := (broker.Remote{TLSCert: "cert.pem"}).Options(); err == nil {
		t.Fatal("a client certificate without its key is accepted")
	}
	// A .creds file is recognised as such (and read by nats.go when it
	// connects, which is why this one, with no valid JWT, fails then).
	creds := filepath.Join(t.TempDir(), "user.creds")
	os.WriteFile(creds, []byte("-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.x\n------END NATS USER JWT------\n"), 0o600)
	if opts, err := (broker.Remote{Creds: creds}).Options(); err != nil || len(opts) != 1 {
		t.Fatalf(".creds file: %d options, %v", len(opts), err)
	}
}

// TestOnlyIngestPurgesTheRegistrysMarkers: ingest may purge the device
// registry's buckets (devices.SweepDeleteMarkers purges their delete
// markers), and nothing else; the pusher and the projector may purge
// nothing. Before, no role could, and ingest's purge of the devices
// bucket's markers waited for an answer that never came.
func TestOnlyIngestPurgesTheRegistrysMarkers(t *testing.T) {
	b := brokertest.Start(t)
	purge := func(stream string) string { return "$JS.API.STREAM.PURGE." + stream }
	registry := []string{streams.DevicesBucket, streams.ProviderTokensBucket, streams.DeviceChannelsBucket, streams.SubscriptionsBucket}

	onErr, errs := violations()
	ingest, _ := b.ConnAs(t, broker.RoleIngest, onErr)
	for _, s := range []string{streams.Ops, streams.Inbox, "KV_" + streams.ChannelsBucket, "KV_" + streams.APITokensBucket} {
		expectViolation(t, ingest, errs, purge(s))
	}
	for _, r := range []broker.Role{broker.RolePusher, broker.RoleProjector} {
		onErr, errs := violations()
		nc, _ := b.ConnAs(t, r, onErr)
		for _, bucket := range registry {
			expectViolation(t, nc, errs, purge("KV_"+bucket))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range []broker.Role{broker.RoleIngest, broker.RoleAll} {
		_, js := b.ConnAs(t, r)
		for _, bucket := range registry {
			s, err := js.Stream(ctx, "KV_"+bucket)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+".nothing"), jetstream.WithPurgeSequence(1)); err != nil {
				t.Fatalf("%s: purge a key of %s: %v", r, bucket, err)
			}
		}
	}
}
