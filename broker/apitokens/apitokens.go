// Package apitokens is the registry of channel-scoped integration tokens
// (spec integrations.md, "Credentials for integrations").
//
// A token has the form
//
//	pgo1.<id>.<secret>
//
// where id is 24 characters of lower-case RFC 4648 base32 (120 bits from
// crypto/rand; see ops.ValidTokenID) and secret is 64 lower-case hex
// characters (256 bits from crypto/rand). The id names the record and may
// be logged and shown; the secret is shown once, by Create, and never
// stored: the PUSHGO_API_TOKENS bucket holds, under the id, the token's
// channel, name, scopes, creation time and the SHA-256 of the secret.
//
// Why a plain SHA-256 and not a password hash such as argon2id: a slow
// hash protects low-entropy secrets (human passwords) against offline
// guessing by whoever reads the stored hash. A 256-bit random secret
// cannot be guessed however fast the hash is, so a slow hash would add
// no protection and would cost its full price on every monitoring report
// (integrations send one request per alert, often in bursts). SHA-256 is
// preimage resistant, so the bucket alone does not yield a usable token.
// The stored and computed digests are compared with crypto/subtle in
// constant time.
//
// Like broker/registry, the Registry keeps an in-memory view of the bucket
// current with a watcher, so authorizing a request costs no broker round
// trip; on a miss it reads the bucket directly, because a token created a
// moment ago through another replica may not have reached this replica's
// watcher yet.
package apitokens

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Scopes a token can hold. They are the scopes schemas/ops validates.
const (
	ScopeEventsIngest = ops.ScopeEventsIngest
	ScopeEventsRead   = ops.ScopeEventsRead
)

// Token format constants.
const (
	// prefix versions the format, so a later format can be told apart
	// and so a leaked token is recognisable by secret scanners.
	prefix = "pgo1"
	// secretBytes is the entropy of the secret: 256 bits.
	secretBytes = 32
	// secretLen is the secret's length in hex characters.
	secretLen = 2 * secretBytes
	// tokenLen is the length of a whole token.
	tokenLen = len(prefix) + 1 + ops.TokenIDLen + 1 + secretLen
	// maxCredential bounds the credential of an Authorization header, as
	// the PUSHGO_TOKEN check does.
	maxCredential = 4096
)

// idEncoding encodes 15 random bytes as exactly 24 characters of
// ops.TokenIDAlphabet.
var idEncoding = base32.NewEncoding(ops.TokenIDAlphabet).WithPadding(base32.NoPadding)

// Token is one integration token, without its secret.
type Token struct {
	ID        string `json:"-"`
	ChannelID string `json:"channel_id"`
	Name      string `json:"name"`
	// Scopes is shared with the registry's view: callers MUST NOT modify
	// it.
	Scopes []string `json:"scopes"`
	// CreatedAt is the creation time in Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
	// Revision is the bucket revision of the record.
	Revision uint64 `json:"-"`
}

// Has reports whether t holds scope.
func (t Token) Has(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// record is the bucket value of a token.
type record struct {
	ChannelID string   `json:"channel_id"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	CreatedAt int64    `json:"created_at"`
	// SecretHash is the lower-case hex SHA-256 of the secret's text.
	SecretHash string `json:"secret_hash"`
}

// entry is a token of the in-memory view. A revoked token stays as a
// tombstone of the view for a while (kvview's TombstonesKept): token ids
// are random and never reissued, so a tombstone is final, and it keeps a
// bucket read that raced with the revocation from bringing the token
// back. After it, a revoked token is one the view does not know: its
// lookup asks the bucket, whose leader answers not found.
type entry struct {
	tok  Token
	hash [sha256.Size]byte
}

// Options configure a Registry.
type Options struct {
	// MaxPerChannel caps the tokens of one channel: Create answers
	// ErrLimitReached at the cap. 0 means no cap. The count is of the
	// view after a sync with the bucket, so concurrent creations (on any
	// replica) can pass the cap by how many are in flight.
	MaxPerChannel int
	// Timeout, when set, bounds what one call asks the broker (a lookup
	// that misses the view, the count before a create, the create, a
	// revoke) as a whole: a broker that is down costs a request one
	// timeout, not one per round trip. Ingest sets it to the append
	// timeout.
	Timeout time.Duration
	// Logger receives the registry's events. It is never given a token or
	// a secret. Default: discard.
	Logger *slog.Logger
	// FreshEvery is how often the registry checks that its view holds
	// every write the bucket has (kvview.Watch.Sync, bounded by the same
	// period). While a check fails, every token is looked up from the
	// bucket's leader instead of the view. A watch whose consumer's server
	// died does not break: the client notices only after missed
	// heartbeats, and the view kept accepting a token revoked through
	// another replica for some 20 s; with the check, for at most about two
	// periods. Default 1 s; negative: never checked.
	FreshEvery time.Duration
}

// ErrLimitReached is Create's answer when the channel holds
// Options.MaxPerChannel tokens already.
var ErrLimitReached = errors.New("the channel holds the most tokens allowed")

// Registry holds the tokens. The caller MUST call Close.
type Registry struct {
	view *kvview.Map[entry]
	// stale is set while the last freshness check failed (Options.
	// FreshEvery): lookups then ask the bucket's leader.
	stale      atomic.Bool
	freshEvery time.Duration
	stopChecks context.CancelFunc
	checksDone chan struct{}

	max     int
	timeout time.Duration
	log     *slog.Logger
	// deleteAt deletes a token on condition of its revision (the bucket's
	// Delete; tests inject the broker's refusals).
	deleteAt func(ctx context.Context, id string, rev uint64) error
}

// Open opens the token bucket (which provision.Ensure created) and starts
// the watch that keeps the in-memory view current. It returns once the
// initial values are loaded.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Token ids are random and never reissued, so a deletion is final.
	view, err := kvview.OpenMap(ctx, js, streams.APITokensBucket, decode, kvview.Options{Logger: opts.Logger, DeletesAreFinal: true})
	if err != nil {
		return nil, err
	}
	if opts.FreshEvery == 0 {
		opts.FreshEvery = time.Second
	}
	r := &Registry{view: view, max: opts.MaxPerChannel, timeout: opts.Timeout, log: opts.Logger, freshEvery: opts.FreshEvery,
		checksDone: make(chan struct{})}
	r.deleteAt = func(ctx context.Context, id string, rev uint64) error {
		return r.view.Bucket().Delete(ctx, id, jetstream.LastRevision(rev))
	}
	cctx, cancel := context.WithCancel(context.Background())
	r.stopChecks = cancel
	if r.freshEvery > 0 {
		go r.checkFreshness(cctx)
	} else {
		close(r.checksDone)
	}
	return r, nil
}

// Collectors are the registry's metrics: pushgo_api_tokens_view_behind,
// 1 while the last freshness check found the view behind the bucket (its
// tokens are then looked up from the bucket's leader; a view behind for
// minutes is a watch that no longer receives the bucket's writes).
func (r *Registry) Collectors() []prometheus.Collector {
	return []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_api_tokens_view_behind",
		Help: "1 while this process's view of the integration tokens is behind the bucket (tokens are looked up from the bucket's leader meanwhile), else 0."},
		func() float64 {
			if r.stale.Load() {
				return 1
			}
			return 0
		})}
}

// Close stops the freshness checks and the watch, and waits for them.
// Authorize, Create, Revoke and List MUST NOT be called after Close.
func (r *Registry) Close() {
	r.stopChecks()
	<-r.checksDone
	r.view.Close()
}

// staleLeaderWait bounds a token's leader read while the view is behind:
// every integration request authorizes a token, and while the leader does
// not answer (an election) the view answers after it.
const staleLeaderWait = time.Second

// checkFreshness checks the view every Options.FreshEvery until ctx ends.
func (r *Registry) checkFreshness(ctx context.Context) {
	defer close(r.checksDone)
	t := time.NewTicker(r.freshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, r.freshEvery)
			r.checkFresh(cctx)
			cancel()
		}
	}
}

// checkFresh asks whether the view holds every write the bucket has,
// within ctx, and sets stale by the answer: stale when the broker said
// what the bucket holds and the view did not catch up (kvview.ErrBehind),
// fresh when it holds it. A check the broker did not answer changes
// nothing: with the bucket's leader unreachable (an election), leader
// reads would fail too, and the view is the best answer there is.
func (r *Registry) checkFresh(ctx context.Context) {
	err := r.view.Watch().Sync(ctx)
	if err != nil && !errors.Is(err, kvview.ErrBehind) {
		return
	}
	switch was := r.stale.Swap(err != nil); {
	case err != nil && !was:
		r.log.Warn("apitokens: the token view is behind the bucket; tokens are looked up from the bucket's leader until it catches up", "err", err)
	case err == nil && was:
		r.log.Info("apitokens: the token view caught up with the bucket")
	}
}

// Watch is the watch keeping the view current, for readiness.
func (r *Registry) Watch() *kvview.Watch { return r.view.Watch() }

// remember stores en unless the view holds a tombstone or a newer
// revision of it.
func (r *Registry) remember(en entry) { r.view.Remember(en.tok.ID, en, en.tok.Revision) }

// forget replaces token id by a tombstone.
func (r *Registry) forget(id string, rev uint64) { r.view.Delete(id, rev) }

func decode(id string, b []byte, rev uint64) (entry, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return entry{}, err
	}
	en := entry{tok: Token{ID: id, ChannelID: rec.ChannelID, Name: rec.Name, Scopes: rec.Scopes, CreatedAt: rec.CreatedAt, Revision: rev}}
	// Length first: hex.Decode panics when dst is too short.
	if len(rec.SecretHash) != hex.EncodedLen(sha256.Size) {
		return entry{}, errors.New("secret_hash is not a hex SHA-256")
	}
	if _, err := hex.Decode(en.hash[:], []byte(rec.SecretHash)); err != nil {
		return entry{}, fmt.Errorf("secret_hash: %w", err)
	}
	return en, nil
}

// lookup returns token id from the view or, on a miss, from the bucket.
// A tombstone answers "not found" without a bucket read. Only a miss is
// bounded by Options.Timeout: every integration request authorizes a
// token, almost always from the view, and a timer per request for a read
// that never happens cost 2.5 µs of a Dynatrace report (make bench's
// profile, 3 December).
func (r *Registry) lookup(ctx context.Context, id string) (entry, bool, error) {
	if r.stale.Load() {
		// The view may lack a revoke made through another replica: the
		// leader's answer, or the view's when the leader does not answer.
		lctx, cancel := context.WithTimeout(ctx, staleLeaderWait)
		en, ok, err := r.view.LookupLeader(lctx, id)
		cancel()
		if err == nil {
			return en, ok, nil
		}
		// The leader did not answer. The view, known to be behind, may
		// still hold a token revoked since: trusted only to refuse.
		if _, ok, known := r.view.Get(id); known && !ok {
			return entry{}, false, nil
		}
		return entry{}, false, err
	}
	if en, ok, known := r.view.Get(id); known {
		return en, ok, nil
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.view.Lookup(ctx, id)
}

// bound derives the context of one call's broker work: ctx within
// Options.Timeout.
func (r *Registry) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.timeout)
}

// Create issues a token for channelID with a fresh id and secret and
// returns the whole token, which is not retrievable later, and its
// record. channelID, name and scopes MUST be validated already
// (ops.ValidateTokenCreate); an unknown scope is an error. now is the
// creation time. At Options.MaxPerChannel tokens of the channel it
// answers ErrLimitReached (wrapped).
func (r *Registry) Create(ctx context.Context, channelID, name string, scopes []string, now time.Time) (string, Token, error) {
	if len(scopes) == 0 {
		return "", Token{}, errors.New("create token: no scopes")
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	for _, s := range scopes {
		if !ops.KnownScope(s) {
			return "", Token{}, fmt.Errorf("create token: unknown scope %q", s)
		}
	}
	if r.max > 0 {
		if err := r.view.Watch().Sync(ctx); err != nil {
			return "", Token{}, fmt.Errorf("create token: count the channel's tokens: %w", err)
		}
		if n := r.view.Count(func(en entry) bool { return en.tok.ChannelID == channelID }); n >= r.max {
			return "", Token{}, fmt.Errorf("create token: %w (%d of %d)", ErrLimitReached, n, r.max)
		}
	}
	var sb [secretBytes]byte
	_, _ = rand.Read(sb[:]) // crypto/rand.Read never fails (Go 1.24+).
	secret := hex.EncodeToString(sb[:])
	sum := sha256.Sum256([]byte(secret))
	rec := record{ChannelID: channelID, Name: name, Scopes: slices.Clone(scopes), CreatedAt: now.UnixMilli(), SecretHash: hex.EncodeToString(sum[:])}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", Token{}, fmt.Errorf("encode token: %w", err)
	}
	// 120 random bits make an id collision practically impossible; the
	// retry only keeps one from becoming a failure.
	for attempt := 0; ; attempt++ {
		id := newID()
		rev, err := r.view.Bucket().Create(ctx, id, b)
		if errors.Is(err, jetstream.ErrKeyExists) && attempt < 2 {
			continue
		}
		if err != nil {
			return "", Token{}, fmt.Errorf("create token %s: %w", id, err)
		}
		tok := Token{ID: id, ChannelID: rec.ChannelID, Name: rec.Name, Scopes: rec.Scopes, CreatedAt: rec.CreatedAt, Revision: rev}
		r.remember(entry{tok: tok, hash: sum})
		r.log.Info("apitokens: token created", "channel_id", channelID, "token_id", id, "scopes", rec.Scopes)
		return prefix + "." + id + "." + secret, tok, nil
	}
}

// revokeAttempts and revokeBackoff bound Revoke's conditional deletes: a
// refusal by a key still in flight clears in microseconds.
const (
	revokeAttempts = 5
	revokeBackoff  = time.Millisecond
)

func newID() string {
	var b [15]byte // 120 bits: exactly 24 base32 characters
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// Revoke deletes token tokenID of channelID. It returns 404 token_not_found
// when there is no such token or it belongs to another channel (the two
// are not told apart, so a channel's owner learns nothing about other
// channels' tokens), and 503 broker_unavailable when the bucket cannot be
// read or written. A revoked token fails Authorize on this replica at
// once, and on the others as soon as their watchers see the deletion.
// The caller MUST have authorized the channel.
func (r *Registry) Revoke(ctx context.Context, channelID, tokenID string) *apierr.Error {
	if !ops.ValidTokenID(tokenID) {
		return apierr.New(apierr.TokenNotFound)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	en, ok, err := r.lookup(ctx, tokenID)
	if err != nil {
		r.log.Warn("apitokens: revoke lookup failed", "channel_id", channelID, "token_id", tokenID, "err", err)
		return brokerUnavailable()
	}
	if !ok || en.tok.ChannelID != channelID {
		return apierr.New(apierr.TokenNotFound)
	}
	// Conditioned on the revision read, so that of two concurrent revokes
	// one answers 404 instead of both succeeding. A refused condition is
	// not that answer yet: a replicated bucket's leader also refuses a
	// conditional write to a key whose last write it has acknowledged and
	// not finished applying (nats-server 2.15 keeps the key "in flight"
	// until then), which a revoke right after the token's creation met.
	// The leader's word decides: the token gone (another revoke won: 404),
	// or still there (tokens are never rewritten: delete it again).
	rev, gone := en.tok.Revision, false
	err = cas.Retry(ctx, revokeAttempts, revokeBackoff, func(attempt int) error {
		if attempt > 0 {
			e, err := r.view.Reads().Latest(ctx, tokenID)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				gone = true
				return nil
			}
			if err != nil {
				return err
			}
			rev = e.Revision()
		}
		return r.deleteAt(ctx, tokenID, rev)
	})
	if err != nil {
		r.log.Warn("apitokens: revoke failed", "channel_id", channelID, "token_id", tokenID,
			"err", fmt.Errorf("delete token %s: %w", tokenID, err))
		return brokerUnavailable()
	}
	r.forget(tokenID, rev)
	if gone {
		return apierr.New(apierr.TokenNotFound)
	}
	r.log.Info("apitokens: token revoked", "channel_id", channelID, "token_id", tokenID)
	return nil
}

// List returns the tokens of channelID, oldest first (by creation time,
// then id), without secrets or their hashes. Every creation and
// revocation acknowledged before the call, through any replica, is in the
// answer: the view is first synced with the bucket (kvview.Watch.Sync,
// whose "nothing newer" is the stream leader's word), because a key
// listing or a view read alone on this replica may miss a token created a
// moment ago through another. It answers 503 broker_unavailable when the
// bucket cannot be read. The caller MUST have authorized the channel.
func (r *Registry) List(ctx context.Context, channelID string) ([]Token, *apierr.Error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if err := r.view.Watch().Sync(ctx); err != nil {
		r.log.Warn("apitokens: list sync failed", "channel_id", channelID, "err", fmt.Errorf("sync token view: %w", err))
		return nil, brokerUnavailable()
	}
	var toks []Token
	// Count visits every live entry under the view's lock; the match
	// collects instead of counting (kvview has no other iteration, and
	// a channel holds at most Options.MaxPerChannel tokens).
	r.view.Count(func(en entry) bool {
		if en.tok.ChannelID == channelID {
			toks = append(toks, en.tok)
		}
		return false
	})
	slices.SortFunc(toks, func(a, b Token) int {
		if a.CreatedAt != b.CreatedAt {
			return cmp.Compare(a.CreatedAt, b.CreatedAt)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return toks, nil
}

// Authorize checks an Authorization header value ("Api-Token <t>" or
// "Bearer <t>", scheme case-insensitive, exactly one credential of at
// most 4096 characters): 401 invalid_api_token when missing, malformed,
// wrong or revoked; 403 scope_missing when the token lacks scope; 503
// broker_unavailable when the token is not in the view and the bucket
// cannot be read. On success the token identifies the channel.
func (r *Registry) Authorize(ctx context.Context, header, scope string) (Token, *apierr.Error) {
	t, ok := parseHeader(header)
	if !ok {
		return Token{}, apierr.New(apierr.InvalidAPIToken)
	}
	return r.AuthorizeToken(ctx, t, scope)
}

// AuthorizeToken is Authorize for a bare token (PagerDuty's routing_key).
func (r *Registry) AuthorizeToken(ctx context.Context, token, scope string) (Token, *apierr.Error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return Token{}, apierr.New(apierr.InvalidAPIToken)
	}
	en, found, err := r.lookup(ctx, id)
	if err != nil {
		r.log.Warn("apitokens: token lookup failed", "token_id", id, "err", err)
		return Token{}, brokerUnavailable()
	}
	// The id is not secret, so it does not matter that an unknown id is
	// answered faster than a wrong secret; the secret comparison itself
	// is constant-time.
	sum := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(sum[:], en.hash[:]) != 1 {
		return Token{}, apierr.New(apierr.InvalidAPIToken)
	}
	if !en.tok.Has(scope) {
		return Token{}, apierr.New(apierr.ScopeMissing)
	}
	return en.tok, nil
}

// parseHeader returns the credential of "Api-Token <t>" or "Bearer <t>".
func parseHeader(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !(strings.EqualFold(scheme, "api-token") || strings.EqualFold(scheme, "bearer")) {
		return "", false
	}
	if cred == "" || len(cred) > maxCredential || strings.ContainsAny(cred, " \t") {
		return "", false
	}
	return cred, true
}

// parseToken splits "pgo1.<id>.<secret>", checking each part's form, so
// that no malformed token costs a bucket read.
func parseToken(t string) (id, secret string, ok bool) {
	if len(t) != tokenLen {
		return "", "", false
	}
	p, rest, _ := strings.Cut(t, ".")
	id, secret, _ = strings.Cut(rest, ".")
	if p != prefix || !ops.ValidTokenID(id) || len(secret) != secretLen {
		return "", "", false
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	return id, secret, true
}

func brokerUnavailable() *apierr.Error {
	return &apierr.Error{Code: apierr.BrokerUnavailable, Detail: apierr.Lookup(apierr.BrokerUnavailable).Message, RetryAfter: 1}
}
