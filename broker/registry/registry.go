// Package registry is ingest's view of the channel registry: the
// PUSHGO_CHANNELS key-value bucket, kept in memory by a watcher so that
// reads cost no broker round trip, with writes by compare-and-swap.
package registry

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// Channel is one channel of the registry.
type Channel struct {
	ID   string `json:"-"`
	Name string `json:"name"`
	// PasswordHash is the argon2id PHC string. It never leaves the registry.
	PasswordHash string `json:"password_hash"`
	CreatedAt    int64  `json:"created_at"`
	// Revision is the bucket revision of this record; it changes on every
	// write, which is what invalidates cached password checks.
	Revision uint64 `json:"-"`
}

// Options configure a Registry.
type Options struct {
	// Argon2 are the cost parameters of new hashes. Default DefaultArgon2.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds concurrent argon2id computations (checks
	// and new channels' hashes) so a burst of cold or wrong passwords can
	// neither exhaust memory nor take every core from the senders whose
	// checks are cached. Default half of GOMAXPROCS, at least 1.
	MaxConcurrentHashes int
	// Gate, when set, admits each password check before any hashing and
	// hears its outcome (ingest's back-off of failed checks).
	Gate Gate
	// Timeout, when set, bounds what one call asks the broker (a lookup
	// that misses the view, a create, a rename with its retries) as a
	// whole, so a broker that is down costs a request one timeout and not
	// one per round trip (JetStream's default of 5 s each: a key create is
	// two). Ingest sets it to the append timeout. Hashing is not bounded
	// by it.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Gate admits password checks and hears their outcomes.
type Gate interface {
	// Admit is asked before channelID's password is checked, and again
	// when its hash may start (after waiting for the hashing bound);
	// cached reports whether the password is one already verified (no
	// hash to compute). A non-nil error is answered instead of the check.
	Admit(ctx context.Context, channelID string, cached bool) *apierr.Error
	// Checked hears the outcome of an admitted check: ok is a match.
	// Checks that could not run (cancelled, unreadable hash) are not
	// reported.
	Checked(ctx context.Context, channelID string, cached, ok bool)
}

// Registry reads and writes channels. The caller MUST call Close.
type Registry struct {
	view   *kvview.Map[Channel]
	opts   Options
	log    *slog.Logger
	hashes chan struct{}
	cache  checkCache

	mu       sync.RWMutex
	verified map[string]verifiedCheck
}

type verifiedCheck struct {
	revision uint64
	mac      [32]byte
}

// Open opens the registry bucket (which provision.Ensure created) and
// starts the watch that keeps the in-memory view current. It returns once
// the initial values are loaded.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Registry, error) {
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = DefaultArgon2
	}
	if opts.MaxConcurrentHashes <= 0 {
		opts.MaxConcurrentHashes = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	view, err := kvview.OpenMap(ctx, js, streams.ChannelsBucket, decodeChannel, kvview.Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Registry{
		view: view, opts: opts, log: opts.Logger,
		hashes:   make(chan struct{}, opts.MaxConcurrentHashes),
		cache:    newCheckCache(),
		verified: map[string]verifiedCheck{},
	}, nil
}

func decodeChannel(id string, b []byte, rev uint64) (Channel, error) {
	var c Channel
	if err := json.Unmarshal(b, &c); err != nil {
		return Channel{}, err
	}
	c.ID, c.Revision = id, rev
	return c, nil
}

// Close stops the watch and waits for it.
func (r *Registry) Close() { r.view.Close() }

// Watch is the watch keeping the view current, for readiness.
func (r *Registry) Watch() *kvview.Watch { return r.view.Watch() }

// Lookup returns the channel id. It reads the in-memory view and, on a
// miss, the bucket itself: a channel created a moment ago through another
// replica may not have reached this replica's watch yet.
func (r *Registry) Lookup(ctx context.Context, id string) (Channel, bool, error) {
	// Every write authorizes its channel: a view hit answers without the
	// deadline (a timer per request) that only the bucket read needs.
	if c, ok, known := r.view.Get(id); known {
		return c, ok, nil
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.view.Lookup(ctx, id)
}

// bound derives the context of one call's broker work: ctx within
// Options.Timeout.
func (r *Registry) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.opts.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.opts.Timeout)
}

// Authorize checks that channel id exists and that password is its
// password: 404 channel_not_found, 403 password_mismatch, 503 when the
// registry cannot be read, or the Gate's refusal (before any hashing).
func (r *Registry) Authorize(ctx context.Context, id, password string) (Channel, *apierr.Error) {
	c, ok, err := r.Lookup(ctx, id)
	if err != nil {
		r.log.Warn("registry: lookup failed", "channel_id", id, "err", err)
		return Channel{}, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: apierr.Lookup(apierr.BrokerUnavailable).Message, RetryAfter: 1}
	}
	if !ok {
		return Channel{}, apierr.New(apierr.ChannelNotFound)
	}
	mac := r.cache.mac(id, password)
	r.mu.RLock()
	v, hit := r.verified[id]
	r.mu.RUnlock()
	cached := hit && v.revision == c.Revision && subtle.ConstantTimeCompare(v.mac[:], mac[:]) == 1
	if g := r.opts.Gate; g != nil {
		if aerr := g.Admit(ctx, id, cached); aerr != nil {
			return Channel{}, aerr
		}
	}
	if cached {
		r.checked(ctx, id, true, true)
		return c, nil
	}
	match, aerr, err := r.verify(ctx, id, c.PasswordHash, password)
	if aerr != nil {
		return Channel{}, aerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return Channel{}, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "request cancelled while verifying the password", RetryAfter: 1}
		}
		r.log.Error("registry: password hash unreadable", "channel_id", id, "err", err)
		return Channel{}, apierr.New(apierr.InternalError)
	}
	r.checked(ctx, id, false, match)
	if !match {
		return Channel{}, apierr.New(apierr.PasswordMismatch)
	}
	r.mu.Lock()
	r.verified[id] = verifiedCheck{revision: c.Revision, mac: mac}
	r.mu.Unlock()
	return c, nil
}

// checked tells the Gate, if any, a check's outcome.
func (r *Registry) checked(ctx context.Context, id string, cached, ok bool) {
	if g := r.opts.Gate; g != nil {
		g.Checked(ctx, id, cached, ok)
	}
}

// verify runs argon2id under the concurrency bound. The Gate is asked
// again once a hash may start: checks of the channel that failed while
// this one waited may have started a back-off, which then refuses it.
func (r *Registry) verify(ctx context.Context, id, phc, password string) (bool, *apierr.Error, error) {
	select {
	case r.hashes <- struct{}{}:
	case <-ctx.Done():
		return false, nil, ctx.Err()
	}
	defer func() { <-r.hashes }()
	if g := r.opts.Gate; g != nil {
		if aerr := g.Admit(ctx, id, false); aerr != nil {
			return false, aerr, nil
		}
	}
	match, err := verifyPassword(phc, password)
	return match, nil, err
}

func (r *Registry) hash(ctx context.Context, password string) (string, error) {
	select {
	case r.hashes <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-r.hashes }()
	return hashPassword(password, r.opts.Argon2), nil
}

// Create makes a new channel with a fresh id.
func (r *Registry) Create(ctx context.Context, name, password string, now time.Time) (Channel, error) {
	phc, err := r.hash(ctx, password)
	if err != nil {
		return Channel{}, err
	}
	c := Channel{ID: ids.NewChannelID(), Name: name, PasswordHash: phc, CreatedAt: now.UnixMilli()}
	b, err := json.Marshal(c)
	if err != nil {
		return Channel{}, err
	}
	bctx, cancel := r.bound(ctx)
	defer cancel()
	rev, err := r.view.Bucket().Create(bctx, c.ID, b)
	if err != nil {
		return Channel{}, fmt.Errorf("create channel %s: %w", c.ID, err)
	}
	c.Revision = rev
	r.view.Remember(c.ID, c, rev)
	// The creator just proved the password; the first send skips argon2id.
	r.mu.Lock()
	r.verified[c.ID] = verifiedCheck{revision: rev, mac: r.cache.mac(c.ID, password)}
	r.mu.Unlock()
	return c, nil
}

// ErrConflict is returned by Rename when the record changed underneath
// more times than the retry budget allows.
var ErrConflict = errors.New("registry: concurrent update conflict")

// Rename sets the name of channel c (already authorized) by
// compare-and-swap on its revision, retrying on a concurrent write.
func (r *Registry) Rename(ctx context.Context, c Channel, name string) (Channel, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rev, err := kvview.Update(ctx, r.view.Reads(), c.ID, func(value []byte, rev uint64) ([]byte, bool, error) {
		cur, err := decodeChannel(c.ID, value, rev)
		if err != nil {
			return nil, false, err
		}
		c = cur
		c.Name = name
		b, err := json.Marshal(c)
		return b, err == nil, err
	}, kvview.UpdateOptions{Attempts: 8})
	switch {
	case errors.Is(err, cas.ErrExhausted):
		return Channel{}, ErrConflict
	case err != nil:
		return Channel{}, fmt.Errorf("rename channel %s: %w", c.ID, err)
	}
	c.Revision = rev
	r.view.Remember(c.ID, c, rev)
	return c, nil
}
