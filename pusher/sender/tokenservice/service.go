// Package tokenservice gets APNs provider tokens and FCM access tokens from
// a PushGo token service, so a gateway without Apple or Google credentials
// of its own can push to the official PushGo apps (App Store and Play
// builds), whose push credentials only the token service holds.
//
// The protocol is the PushGo gateway's token client
// (AldenClark/pushgo-gateway src/token_providers/remote/gateway.rs, wired
// in src/main.rs):
//
//	GET {url}/provider/token/production?provider=apns   APNs, production
//	GET {url}/provider/token/sandbox?provider=apns      APNs, sandbox
//	GET {url}/provider/token?provider=fcm               FCM
//
// with a User-Agent header and no credentials, answered by
//
//	{"success": true, "error": null,
//	 "data": {"token": "…", "expires_in": 3600, "project_id": "…"}}
//
// (project_id for FCM only). A Cache per provider and environment keeps a
// token until a minute before it expires, shares one fetch among
// concurrent callers, and keeps a still-valid token when a refresh fails.
//
// A Cache is an apns.TokenSource and an fcm.AccessSource; the senders take
// it through those interfaces, so this package imports neither.
package tokenservice

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// OfficialAPNsTopic is the bundle id of the official PushGo app for iPhone,
// iPad and Mac, the APNs topic its tokens are for (pushgo-gateway
// src/providers/apns_client.rs IOS_TOPIC and MACOS_TOPIC; AldenClark/pushgo
// pushgo.xcodeproj PRODUCT_BUNDLE_IDENTIFIER).
const OfficialAPNsTopic = "io.ethan.pushgo"

// OfficialWatchAPNsTopic is the bundle id of the official watchOS app
// (apns_client.rs WATCHOS_TOPIC), which PushGo uses for watchOS devices.
const OfficialWatchAPNsTopic = "io.ethan.pushgo.watchkitapp"

// Options configure a Service. URL is required; the zero value of every
// other field takes its default.
type Options struct {
	// URL is the token service's base URL (PUSHGO_TOKEN_SERVICE_URL), such
	// as https://token.pushgo.dev; a path is kept, a trailing slash
	// dropped.
	URL string
	// HTTPClient makes the requests; default a client on a clone of
	// http.DefaultTransport (each fetch is bounded by FetchTimeout).
	HTTPClient *http.Client
	// UserAgent is the User-Agent header; default DefaultUserAgent.
	UserAgent string
	// RefreshBefore, RetryInterval and FetchTimeout: see CacheOptions.
	RefreshBefore time.Duration
	RetryInterval time.Duration
	FetchTimeout  time.Duration
	// Now is the clock of expiries; default time.Now.
	Now func() time.Time
	// Logger receives a warning per failed fetch (never a token); default
	// discard.
	Logger *slog.Logger
}

// Service is one token service with a Cache per provider and environment.
// It is safe for concurrent use.
type Service struct {
	client *Client
	opts   Options

	mu     sync.Mutex
	caches map[string]*Cache
}

// New validates opts and returns a Service. It makes no request: tokens are
// fetched on first use.
func New(opts Options) (*Service, error) {
	if opts.URL == "" {
		return nil, errors.New("tokenservice: a URL is required")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := newClient(opts.URL, opts.HTTPClient, opts.UserAgent, opts.Now)
	if err != nil {
		return nil, err
	}
	// Validate the cache options once, here, rather than at first use.
	if _, err := NewCache(func(context.Context) (Token, error) { return Token{}, nil }, cacheOptions(opts, "", false)); err != nil {
		return nil, err
	}
	return &Service{client: c, opts: opts, caches: map[string]*Cache{}}, nil
}

// Client returns the service's uncached client.
func (s *Service) Client() *Client { return s.client }

// APNs returns the Cache of APNs provider tokens for env (Production or
// Sandbox; anything else is Production). Every call for one env returns
// the same Cache.
func (s *Service) APNs(env Environment) *Cache {
	if env != Sandbox {
		env = Production
	}
	return s.cache(APNs, env)
}

// FCM returns the Cache of FCM access tokens and their project id. Every
// call returns the same Cache.
func (s *Service) FCM() *Cache { return s.cache(FCM, "") }

func (s *Service) cache(p Provider, env Environment) *Cache {
	name := string(p)
	if env != "" {
		name += " " + string(env)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.caches[name]; ok {
		return c
	}
	c, _ := NewCache(func(ctx context.Context) (Token, error) { return s.client.Fetch(ctx, p, env) },
		cacheOptions(s.opts, name, p == FCM)) // options validated in New
	s.caches[name] = c
	return c
}

func cacheOptions(o Options, name string, requireProject bool) CacheOptions {
	return CacheOptions{RefreshBefore: o.RefreshBefore, RetryInterval: o.RetryInterval, FetchTimeout: o.FetchTimeout,
		RequireProject: requireProject, Name: name, Now: o.Now, Logger: o.Logger}
}
