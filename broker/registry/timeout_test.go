package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ids"
)

// TestTimeoutBoundsEachCall: with Options.Timeout, what a call asks the
// broker while it is down ends with the registry's own deadline, one for
// the whole call (a key create is two round trips, each of which waited
// JetStream's default 5 s: /channel/create took 10 s in issue 12), even
// when the caller's context has none. The JetStream handle's own default
// is made 10 minutes, so a call the registry does not bound does not
// return.
func TestTimeoutBoundsEachCall(t *testing.T) {
	b := brokertest.Start(t)
	js, err := jetstream.New(b.NC, jetstream.WithDefaultTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Open(ctx, js, Options{Argon2: Argon2Params{Time: 1, Memory: 64, Threads: 1}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ch, err := r.Create(ctx, "home", "correct-horse", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Shutdown()

	calls := map[string]func() error{
		"Create": func() error {
			_, err := r.Create(context.Background(), "other", "correct-horse", time.Now())
			return err
		},
		"Rename": func() error { _, err := r.Rename(context.Background(), ch, "renamed"); return err },
		// An id the view does not hold is read from the bucket.
		"Lookup": func() error { _, _, err := r.Lookup(context.Background(), ids.NewChannelID()); return err },
	}
	for name, call := range calls {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with the broker down: %v, want the registry's deadline", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s with the broker down: no answer a minute after the registry's 200 ms timeout", name)
		}
	}
	// What the view holds needs no broker.
	if _, aerr := r.Authorize(context.Background(), ch.ID, "correct-horse"); aerr != nil {
		t.Fatalf("authorize from the view: %v", aerr)
	}
}
