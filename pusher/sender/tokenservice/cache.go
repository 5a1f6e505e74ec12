package tokenservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults of CacheOptions.
const (
	// DefaultRefreshBefore: a token is fetched again a minute before it
	// expires (gateway.rs TOKEN_REFRESH_BUFFER).
	DefaultRefreshBefore = time.Minute
	// DefaultRetryInterval is the pause after a failed fetch before the
	// next one.
	DefaultRetryInterval = 5 * time.Second
	// DefaultFetchTimeout bounds one fetch.
	DefaultFetchTimeout = 10 * time.Second
)

// Fetcher fetches a new token. ctx carries the fetch's own deadline.
type Fetcher func(ctx context.Context) (Token, error)

// CacheOptions configure a Cache; the zero value takes every default.
type CacheOptions struct {
	// RefreshBefore is how long before its expiry a token is replaced:
	// default DefaultRefreshBefore. A token living less than twice as long
	// is replaced at half its lifetime instead, so a short-lived token is
	// not fetched again on every call.
	RefreshBefore time.Duration
	// RetryInterval is how long after the start of a failed fetch no new
	// fetch starts: callers get the still-valid token, or the failure; and
	// how long after the start of a successful one a rejection of its
	// token (Invalidate) is ignored. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// FetchTimeout bounds one fetch, which runs on its own context, not a
	// caller's, because callers share it. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RequireProject makes an answer without a project id fail unless an
	// earlier answer gave one (FCM: the PushGo gateway's
	// fetch_and_store_with_project).
	RequireProject bool
	// Name names the cache in log lines and errors ("apns production").
	Name string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives a warning for each failed fetch (never a token);
	// default: discard.
	Logger *slog.Logger
}

// Cache holds one provider's token and fetches a new one when it is due. It
// is safe for concurrent use. Its contract:
//
//   - a token is used until RefreshBefore before its expiry, then fetched
//     again;
//   - concurrent callers share one fetch: the caller that finds the token
//     due starts it and waits for it, as do callers without a valid token
//     and callers of an invalidated one; other callers keep using the
//     valid token meanwhile;
//   - a failed fetch keeps the old token while it is still valid, and no
//     new fetch starts within RetryInterval of the failure;
//   - Invalidate(v) marks a token the provider rejected as expired, so the
//     next call fetches again (once, however many callers saw v rejected),
//     unless v was fetched less than RetryInterval ago.
type Cache struct {
	fetch Fetcher
	opts  CacheOptions

	mu       sync.Mutex
	tok      Token
	fetched  time.Time // when the fetch of tok started
	stale    bool      // tok was rejected: fetch again before using it
	failedAt time.Time // when the last failed fetch started, zero after a success
	lastErr  error
	inflight *call
}

type call struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewCache returns a Cache that fetches with fetch. It validates opts and
// fills in the defaults; it fetches nothing until the first Get.
func NewCache(fetch Fetcher, opts CacheOptions) (*Cache, error) {
	if fetch == nil {
		return nil, errors.New("tokenservice: a fetcher is required")
	}
	if opts.RefreshBefore < 0 || opts.RetryInterval < 0 || opts.FetchTimeout < 0 {
		return nil, errors.New("tokenservice: negative refresh, retry or fetch duration")
	}
	if opts.RefreshBefore == 0 {
		opts.RefreshBefore = DefaultRefreshBefore
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.FetchTimeout == 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.Name == "" {
		opts.Name = "token"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cache{fetch: fetch, opts: opts}, nil
}

// refreshAt is when a token fetched at fetched is due for replacement.
func (c *Cache) refreshAt(t Token, fetched time.Time) time.Time {
	return t.Expiry.Add(-min(c.opts.RefreshBefore, t.Expiry.Sub(fetched)/2))
}

// Get returns a token valid now, fetching one when none is cached, when the
// cached one is due for refresh, or after Invalidate. ctx bounds only the
// wait: the fetch itself is shared and runs to FetchTimeout. The error is
// the fetch's (or ctx's) when there is no valid token to fall back on.
func (c *Cache) Get(ctx context.Context) (Token, error) {
	c.mu.Lock()
	now := c.opts.Now()
	held := c.tok
	valid := held.Valid(now)
	if valid && !c.stale && now.Before(c.refreshAt(held, c.fetched)) {
		c.mu.Unlock()
		return held, nil
	}
	if !c.failedAt.IsZero() && now.Sub(c.failedAt) < c.opts.RetryInterval {
		err := c.lastErr
		c.mu.Unlock()
		if valid {
			return held, nil
		}
		return Token{}, err
	}
	cl, leader := c.inflight, false
	if cl == nil {
		cl, leader = &call{done: make(chan struct{})}, true
		c.inflight = cl
		go c.run(cl)
	}
	stale := c.stale
	c.mu.Unlock()

	if valid && !stale && !leader {
		return held, nil // someone else is refreshing; the held token still works
	}
	select {
	case <-cl.done:
		if cl.err == nil {
			return cl.tok, nil
		}
		if valid {
			return held, nil
		}
		return Token{}, cl.err
	case <-ctx.Done():
		if valid {
			return held, nil
		}
		return Token{}, ctx.Err()
	}
}

// run makes one fetch for cl and stores its outcome.
func (c *Cache) run(cl *call) {
	started := c.opts.Now() // a fetch counts from its start, success or failure
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FetchTimeout)
	tok, err := c.fetch(ctx)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && tok.ProjectID == "" {
		tok.ProjectID = c.tok.ProjectID // an answer without project_id keeps the known one
	}
	if err == nil && c.opts.RequireProject && tok.ProjectID == "" {
		err = errors.New("token service: answer without project_id")
	}
	if err == nil && tok.Value == "" {
		err = errors.New("token service: empty token")
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", c.opts.Name, err)
		c.failedAt, c.lastErr = started, err
		kept := c.tok.Valid(c.opts.Now())
		// Not "token service": the FCM sender's credentials-file cache
		// logs here too, and its operator may have no token service.
		c.opts.Logger.Warn("token fetch failed", "cache", c.opts.Name,
			"kept_valid_token", kept, "error", err.Error())
	} else {
		c.tok, c.fetched, c.stale = tok, started, false
		c.failedAt, c.lastErr = time.Time{}, nil
	}
	cl.tok, cl.err = tok, err
	c.inflight = nil
	close(cl.done)
}

// Invalidate marks value as rejected by the provider (APNs
// ExpiredProviderToken, FCM 401/403): if it is the cached token, the next
// Get fetches a new one and, should that fetch fail, keeps using value
// while it is valid. A value other than the cached one (already replaced)
// is ignored, and so is the cached one within RetryInterval of the start of
// its fetch: the service has just handed it out, so asking again at once
// would bring it back, and every caller waits for a stale token's fetch.
// (FCM answers 403 SENDER_ID_MISMATCH for a device registered with another
// Firebase project, push after push: each used to cost a fetch that held
// every send.)
func (c *Cache) Invalidate(value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if value != "" && value == c.tok.Value && c.opts.Now().Sub(c.fetched) >= c.opts.RetryInterval {
		c.stale = true
	}
}

// Token returns the current token's value; it makes a Cache an APNs token
// source (pusher/sender/apns.TokenSource).
func (c *Cache) Token(ctx context.Context) (string, error) {
	t, err := c.Get(ctx)
	return t.Value, err
}

// Access returns the current token's value and project id; it makes a
// Cache an FCM access source (pusher/sender/fcm.AccessSource).
func (c *Cache) Access(ctx context.Context) (token, projectID string, err error) {
	t, err := c.Get(ctx)
	if err == nil && t.ProjectID == "" {
		return "", "", fmt.Errorf("%s: no project id", c.opts.Name)
	}
	return t.Value, t.ProjectID, err
}
