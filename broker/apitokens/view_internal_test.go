package apitokens

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
)

func startJS(t *testing.T) jetstream.JetStream { return brokertest.Start(t).JS }

// TestFallbackGet: a replica whose watcher has not seen a token yet
// (here: has stopped) still accepts it, by reading the bucket on the
// miss. This pins the path that TestSecondReplica only may exercise,
// depending on how fast the second watcher is.
func TestFallbackGet(t *testing.T) {
	js := startJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r1, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	lagging, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lagging.Close() // stops the watcher only; the bucket stays readable

	tok, rec, err := r1.Create(ctx, ids.NewChannelID(), "x", []string{ScopeEventsIngest}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, inView := lagging.view.Get(rec.ID); inView {
		t.Fatal("a stopped watcher saw the token")
	}
	if _, aerr := lagging.AuthorizeToken(ctx, tok, ScopeEventsIngest); aerr != nil {
		t.Fatalf("fallback get: %v", aerr)
	}
	// An unknown id is looked up and found missing.
	if _, aerr := lagging.AuthorizeToken(ctx, "pgo1."+newID()+"."+tok[len(tok)-64:], ScopeEventsIngest); aerr == nil || aerr.Code != apierr.InvalidAPIToken {
		t.Fatalf("unknown id: %v", aerr)
	}
	// Revoke on a lagging replica reads the bucket too.
	if aerr := lagging.Revoke(ctx, rec.ChannelID, rec.ID); aerr != nil {
		t.Fatalf("revoke: %v", aerr)
	}
	if _, aerr := lagging.AuthorizeToken(ctx, tok, ScopeEventsIngest); aerr == nil || aerr.Code != apierr.InvalidAPIToken {
		t.Fatalf("after revoke: %v", aerr)
	}
}

// TestTombstoneIsFinal: a bucket read that raced with a revocation (the
// record read before the delete, remembered after it) must not bring the
// token back.
func TestTombstoneIsFinal(t *testing.T) {
	r := &Registry{view: kvview.NewMap[entry](decode, kvview.Options{DeletesAreFinal: true})}
	id := newID()
	live := entry{tok: Token{ID: id, ChannelID: ids.NewChannelID(), Scopes: []string{ScopeEventsIngest}, Revision: 5}}
	r.remember(live)
	r.forget(id, 6)
	r.remember(live)
	live.tok.Revision = 7
	r.remember(live)
	if en, live, _ := r.view.Get(id); live {
		t.Fatalf("revoked token came back: %+v", en)
	}
}

// TestIDsAreValid: every fresh id has the form ops.ValidTokenID accepts,
// which is what revoke requests are validated against.
func TestIDsAreValid(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newID()
		if len(id) != 24 || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
		if _, _, ok := parseToken("pgo1." + id + "." + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"); !ok {
			t.Fatalf("token with id %q does not parse", id)
		}
	}
}
