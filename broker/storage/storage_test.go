package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/storage"
)

// TestFullStore: a broker whose file storage is at its limit refuses
// writes with an error Full recognises (a stream's publish and a bucket's
// put alike), and Measure says the store is full; an error of a broker
// that is merely away is not "full".
func TestFullStore(t *testing.T) {
	const limit = 2 << 20
	e, err := broker.Start(broker.Config{Dir: t.TempDir(), MaxStore: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := fillStream(ctx, t, nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KV"})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := storage.Measure(ctx, js, limit); err != nil || u.Full() || u.Limit != limit {
		t.Fatalf("empty store: %+v %v, want not full with limit %d", u, err, limit)
	}

	refused := fill(ctx, js)
	if !storage.Full(refused) {
		t.Fatalf("filling the store ended with %v, want a refusal Full recognises", refused)
	}
	if _, err := kv.Put(ctx, "k", make([]byte, 32<<10)); !storage.Full(err) {
		t.Fatalf("a bucket put into the full store: %v, want a refusal Full recognises", err)
	}
	u, err := storage.Measure(ctx, js, limit)
	if err != nil || !u.Full() {
		t.Fatalf("full store measured %+v %v, want full", u, err)
	}
	if e := storage.Or(refused, nil); e == nil || e.Status() != 507 || e.RetryAfter != 0 {
		t.Fatalf("answer to the refusal: %+v, want 507 store_full without Retry-After", e)
	}

	for _, err := range []error{nil, context.DeadlineExceeded, jetstream.ErrMsgNotFound, errors.New("nats: no responders")} {
		if storage.Full(err) {
			t.Errorf("Full(%v) = true", err)
		}
	}
}

// TestFullAccount: a server whose account has a file limit of its own (a
// cluster's accounts.conf: jetstream { max_file }) refuses a write past
// it with "resource limits exceeded for account" (10002), which Full
// recognises, so the gateway answers 507 store_full, not 503 "retry"
// (each retry was refused again); Measure reads the account's limit.
func TestFullAccount(t *testing.T) {
	const limit = 2 << 20
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts { PUSHGO { jetstream: { max_file: %d }, users: [ { user: u, password: p } ] } }
`, filepath.Join(dir, "js"), limit), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := fillStream(ctx, t, nc)
	if u, err := storage.Measure(ctx, js, 0); err != nil || u.Full() || u.Limit != limit {
		t.Fatalf("empty account: %+v %v, want not full with the account's limit %d", u, err, limit)
	}
	if refused := fill(ctx, js); !storage.Full(refused) {
		t.Fatalf("filling the account ended with %v, want a refusal Full recognises", refused)
	}
	if u, err := storage.Measure(ctx, js, 0); err != nil || !u.Full() {
		t.Fatalf("full account measured %+v %v, want full", u, err)
	}
}

// fillStream is a JetStream handle over nc (closed when t ends) and its
// stream FILL (fill.>).
func fillStream(ctx context.Context, t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILL", Subjects: []string{"fill.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

// fill publishes 32 KiB messages to FILL until one is refused, and
// returns the refusal (nil after 1000 accepted).
func fill(ctx context.Context, js jetstream.JetStream) error {
	for i := range 1000 {
		if _, err := js.Publish(ctx, fmt.Sprintf("fill.%d", i), make([]byte, 32<<10)); err != nil {
			return err
		}
	}
	return nil
}
