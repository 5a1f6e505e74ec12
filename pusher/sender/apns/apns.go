// Package apns sends notifications to Apple Push Notification service over
// HTTP/2 with token authentication, through github.com/sideshow/apns2. The
// provider token comes from a TokenSource: a .p8 key, or the PushGo token
// service (see auth.go).
//
// Request mapping (payload.Notification → APNs):
//
//	apns-topic        Options.Topic (the app's bundle id)
//	apns-id           ID(n.DeliveryID): a name-based UUID, so every attempt
//	                  of one delivery carries the same apns-id
//	apns-push-type    alert, or background for n.Background
//	apns-priority     n.Priority (10 or 5; background always 5)
//	apns-collapse-id  n.CollapseID
//	apns-expiration   n.Expiration (absent when zero); 0 for n.NowOrNever
//	body              payload.APNsJSON(n)
//
// Response mapping (see sender.Outcome):
//
//	200                                         Sent (ProviderID = apns-id)
//	410, or reason Unregistered / ExpiredToken  RetireToken
//	400 BadDeviceToken, DeviceTokenNotForTopic  RetireToken
//	429, 5xx                                    Retry (RetryAfter from Retry-After)
//	403 ExpiredProviderToken                    Retry, after one more request with a
//	                                            fresh token (see authTransport)
//	timeout, connection error                   Retry
//	no provider token (the token source failed) Retry "auth", nothing sent
//	any other status                            Failed (Reason = APNs reason)
//	n.Expiration already passed                 Failed "expired", nothing sent
//
// apns2 makes one HTTP attempt per push and does not retry; each Send is
// bounded by Options.SendTimeout as well as the caller's context.
package apns

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"

	"golang.org/x/net/http2"

	"github.com/google/uuid"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/internal/attempt"
	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
	"github.com/pushgo/gateway/schemas/delivery"
)

// Endpoint names accepted by Options.Endpoint besides a URL.
const (
	Production  = "production"
	Development = "development"
)

// DefaultSendTimeout bounds one Send when Options.SendTimeout is zero.
const DefaultSendTimeout = 10 * time.Second

// DefaultConnections is Options.Connections when zero: enough for the
// pusher's default 512 concurrent sends at about 128 streams each.
const DefaultConnections = 4

// Options configure a Sender. Topic and one credential are required: a .p8
// key (KeyFile or Key, with KeyID and TeamID) or a TokenSource.
type Options struct {
	// KeyFile is the path of the .p8 auth key; Key is its PEM contents.
	// At most one may be set, and none with TokenSource.
	KeyFile string
	Key     []byte
	KeyID   string // the key's id (10 characters in Apple's console)
	TeamID  string // the developer team id
	Topic   string // the app's bundle id
	// WatchTopic is the topic of pushes to a device registered as
	// watchos: a watch app has a bundle id of its own, and APNs refuses a
	// watch token under the phone app's (DeviceTokenNotForTopic, which
	// would retire it). Default Topic.
	WatchTopic string

	// TokenSource supplies provider tokens instead of a key (the PushGo
	// token service, pusher/sender/tokenservice); KeyID and TeamID are
	// then not used and must be empty.
	TokenSource TokenSource

	// Endpoint is "production" (the default when empty), "development",
	// or an http(s) URL (tests and proxies).
	Endpoint string

	// HTTPClient replaces apns2's HTTP/2 client (tests: the fake server's
	// client, which trusts its certificate). Only its Transport is used,
	// wrapped, not modified: the client's Timeout, Jar and redirect policy
	// are not (every request is bounded by SendTimeout, and APNs never
	// redirects). Nil uses apns2's client. One client is one connection
	// pool, so a sender given HTTPClient uses it for every push whatever
	// Connections says; NewHTTPClient gives it a client per connection.
	HTTPClient *http.Client
	// NewHTTPClient, when set, makes the HTTP client of each of the
	// Connections connections (each call a client with a transport of its
	// own). At most one of HTTPClient and NewHTTPClient may be set.
	NewHTTPClient func() *http.Client

	// Connections is how many HTTP/2 connections the sender spreads its
	// pushes over, by device: one device's pushes always take the same
	// connection, so they reach Apple in the order they were written (see
	// sender.WithWritten); default DefaultConnections. One
	// connection's frames are written under one lock and read by one
	// goroutine on each side, and APNs serves one connection's streams in
	// order, so one connection caps a sender's throughput however many
	// streams it may carry (Apple: "you can establish multiple connections
	// to APNs servers to improve performance").
	Connections int

	// SendTimeout bounds one Send; default DefaultSendTimeout.
	SendTimeout time.Duration
	// Logger receives debug lines about failed sends (never a token);
	// default: discard.
	Logger *slog.Logger
	// Now is the clock for Retry-After dates; default time.Now.
	Now func() time.Time
}

// Sender is an APNs sender. It is safe for concurrent use.
type Sender struct {
	clients    []*apns2.Client // one per connection; a device's is connectionOf(token)
	ordered    bool            // each client is one connection: Written may be promised (see withWriteTrace)
	topic      string
	watchTopic string
	timeout    time.Duration
	log        *slog.Logger
	now        func() time.Time
}

var _ sender.Sender = (*Sender)(nil)

// topicFor is the apns-topic of a push to a device of platform.
func (s *Sender) topicFor(platform string) string {
	if platform == "watchos" {
		return s.watchTopic
	}
	return s.topic
}

// New validates opts and returns a Sender. It reads the key file but makes
// no network call (a TokenSource is first asked at the first Send).
func New(opts Options) (*Sender, error) {
	if opts.Topic == "" {
		return nil, errors.New("apns: topic is required")
	}
	src, err := tokenSource(opts)
	if err != nil {
		return nil, err
	}
	host, err := endpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	if opts.SendTimeout < 0 {
		return nil, errors.New("apns: negative send timeout")
	}
	if opts.SendTimeout == 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	switch {
	case opts.Connections < 0:
		return nil, errors.New("apns: negative connection count")
	case opts.HTTPClient != nil && opts.NewHTTPClient != nil:
		return nil, errors.New("apns: set one of HTTPClient and NewHTTPClient, not both")
	case opts.HTTPClient != nil:
		opts.Connections = 1
	case opts.Connections == 0:
		opts.Connections = DefaultConnections
	}
	s := &Sender{topic: opts.Topic, watchTopic: cmp.Or(opts.WatchTopic, opts.Topic), timeout: opts.SendTimeout,
		log: opts.Logger, now: opts.Now, ordered: true}
	for range opts.Connections {
		// apns2's client without its own token: the authorization header
		// comes from src, below the attempt record (see auth.go). Each
		// apns2 client has a transport, so a connection, of its own.
		client := apns2.NewTokenClient(nil)
		client.Host = host
		base := client.HTTPClient
		switch {
		case opts.HTTPClient != nil:
			base = opts.HTTPClient
		case opts.NewHTTPClient != nil:
			base = opts.NewHTTPClient()
		}
		rt := base.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		if h2, ok := rt.(*http2.Transport); ok && base == client.HTTPClient {
			// apns2's own transport, made for this client alone: a full
			// connection makes a request wait for a stream rather than open
			// a second connection, so one client is one connection, as
			// Connections says (Apple treats connection churn as abuse).
			h2.StrictMaxConcurrentStreams = true
		}
		if h2, ok := rt.(*http2.Transport); !ok || !h2.StrictMaxConcurrentStreams {
			// A transport that may open a second connection when one is
			// full (net/http's) does not keep a device's requests in the
			// order they were written: never say Written.
			s.ordered = false
		}
		// No client Timeout: Send bounds every request by SendTimeout
		// through its context, and a client Timeout costs a timer and a
		// context of its own a request.
		client.HTTPClient = &http.Client{Transport: &attempt.Transport{Base: authTransport(src, rt)}}
		s.clients = append(s.clients, client)
	}
	return s, nil
}

// tokenSource returns the credential opts name: their TokenSource, or a
// signer of the .p8 key.
func tokenSource(opts Options) (TokenSource, error) {
	hasKey := opts.KeyFile != "" || len(opts.Key) > 0
	if opts.TokenSource != nil {
		if hasKey || opts.KeyID != "" || opts.TeamID != "" {
			return nil, errors.New("apns: set a token source or an auth key (with key id and team id), not both")
		}
		return opts.TokenSource, nil
	}
	if opts.KeyID == "" || opts.TeamID == "" {
		return nil, errors.New("apns: key id and team id are required with an auth key")
	}
	var (
		key *ecdsa.PrivateKey
		err error
	)
	switch {
	case opts.KeyFile != "" && len(opts.Key) > 0:
		return nil, errors.New("apns: set one of key file and key, not both")
	case opts.KeyFile != "":
		key, err = token.AuthKeyFromFile(opts.KeyFile)
	case len(opts.Key) > 0:
		key, err = token.AuthKeyFromBytes(opts.Key)
	default:
		return nil, errors.New("apns: an auth key (.p8) or a token source is required")
	}
	if err != nil {
		return nil, fmt.Errorf("apns: auth key: %w", err)
	}
	return keySource{t: &token.Token{AuthKey: key, KeyID: opts.KeyID, TeamID: opts.TeamID}}, nil
}

func endpoint(e string) (string, error) {
	switch e {
	case "", Production:
		return apns2.HostProduction, nil
	case Development:
		return apns2.HostDevelopment, nil
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("apns: endpoint must be production, development or an http(s) URL, got %q", e)
	}
	return u.Scheme + "://" + u.Host + u.Path, nil
}

// Name returns "apns".
func (s *Sender) Name() string { return string(payload.APNs) }

// namespace is the UUID namespace of apns-ids derived from delivery ids.
var namespace = uuid.MustParse("6f1d4c0e-3b57-4a8e-9a57-0f0c2b9e5a11")

// ID is the apns-id of a delivery: the name-based (SHA-1, version 5) UUID
// of the delivery id, lower case as APNs expects. The same delivery always
// gets the same id, which names it in Apple's feedback; APNs does not drop
// a retried duplicate by it.
func ID(deliveryID string) string {
	return uuid.NewSHA1(namespace, []byte(deliveryID)).String()
}

// Notification translates n into the apns2 request the Sender would make.
func (s *Sender) Notification(n payload.Notification) (*apns2.Notification, error) {
	body, err := n.APNsBody, error(nil)
	if body == nil {
		body, err = payload.APNsJSON(n)
	}
	if err != nil {
		return nil, err
	}
	an := &apns2.Notification{
		ApnsID:      ID(n.DeliveryID),
		CollapseID:  n.CollapseID,
		DeviceToken: n.Token,
		Topic:       s.topicFor(n.Platform),
		Expiration:  n.Expiration,
		Priority:    int(n.Priority),
		PushType:    apns2.PushTypeAlert,
		Payload:     body,
	}
	if n.Background {
		an.PushType = apns2.PushTypeBackground
		an.Priority = apns2.PriorityLow
	}
	if n.NowOrNever {
		an.Expiration = nowOrNever
	}
	if an.Priority != apns2.PriorityHigh {
		an.Priority = apns2.PriorityLow
	}
	return an, nil
}

// Send implements sender.Sender.
func (s *Sender) Send(ctx context.Context, n payload.Notification) sender.Result {
	if n.Token == "" {
		return sender.Result{Outcome: sender.RetireToken, Reason: apns2.ReasonMissingDeviceToken}
	}
	if !n.Expiration.IsZero() && !n.Expiration.After(s.now()) {
		return sender.Result{Outcome: sender.Failed, Reason: "expired"}
	}
	an, err := s.Notification(n)
	if err != nil {
		return sender.Result{Outcome: sender.Failed, Reason: "encode: " + err.Error()}
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.timeout {
		// A caller's deadline within the send timeout bounds the request
		// already (the pusher's is its own send timeout): a second timer
		// and context a push were garbage.
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, s.timeout)
		defer cancelTimeout()
	}
	ctx, rec, cancel := attempt.Start(ctx, false)
	defer cancel()

	client := s.clients[connectionOf(n.Token, len(s.clients))]
	pushCtx := ctx
	if s.ordered {
		pushCtx = withWriteTrace(ctx)
	}
	resp, err := push(pushCtx, client, an)
	_, status, header, _ := rec.Result()
	if err != nil {
		res := sender.Result{Outcome: sender.Retry, Reason: "connection", StatusCode: status}
		if cerr := ctx.Err(); cerr != nil {
			res.Reason = "timeout"
			if errors.Is(cerr, context.Canceled) {
				res.Reason = "canceled"
			}
		} else if bearer.IsCredential(err) {
			// No provider token (the token service failed; the cache has
			// logged why): APNs was never asked.
			res.Reason = "auth"
		} else if status != 0 {
			// An answer whose body did not decode: classify by status (a
			// 410 still retires the token).
			res = classify(status, "")
			res.StatusCode = status
			if res.Outcome == sender.Retry {
				res.RetryAfter = sender.ParseRetryAfter(header.Get("Retry-After"), s.now())
			}
		}
		s.log.LogAttrs(ctx, slog.LevelDebug, "apns send failed",
			slog.String("delivery", delivery.RedactID(n.DeliveryID)), slog.String("result", res.String()), slog.String("error", redact(err)))
		return res
	}
	res := classify(resp.StatusCode, resp.Reason)
	res.StatusCode = resp.StatusCode
	if res.Outcome == sender.Sent {
		res.ProviderID = resp.ApnsID
		if res.ProviderID == "" {
			res.ProviderID = an.ApnsID
		}
		return res
	}
	if res.Outcome == sender.Retry && header != nil {
		res.RetryAfter = sender.ParseRetryAfter(header.Get("Retry-After"), s.now())
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "apns send rejected",
		slog.String("delivery", delivery.RedactID(n.DeliveryID)), slog.String("result", res.String()))
	return res
}

// connectionOf is the connection of the device with token among n: FNV-1a
// of the token, so every push to one device takes one connection, where
// its requests are written in the order they were started (see
// sender.WithWritten).
func connectionOf(token string, n int) int {
	if n == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(token); i++ {
		h = (h ^ uint32(token[i])) * 16777619
	}
	return int(h % uint32(n))
}

// withWriteTrace tells the caller of Send (sender.Written) when the
// request, headers and body, is written to its connection: a request the
// device starts after that is written after it, on the same connection
// (the transport waits for a free stream rather than opening another
// connection: StrictMaxConcurrentStreams). Only a caller that asked
// (sender.WithWritten) pays for the trace.
func withWriteTrace(ctx context.Context) context.Context {
	if !sender.WantsWritten(ctx) {
		return ctx
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(w httptrace.WroteRequestInfo) {
		if w.Err == nil {
			sender.Written(ctx)
		}
	}})
}

// redact returns err's text without the request URL, which holds the
// device token (DESIGN invariant 6).
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// classify maps an APNs status and reason to an outcome.
func classify(status int, reason string) sender.Result {
	if status == http.StatusOK {
		return sender.Result{Outcome: sender.Sent}
	}
	r := sender.Result{Reason: reason}
	if r.Reason == "" {
		r.Reason = http.StatusText(status)
	}
	switch {
	case status == http.StatusGone,
		reason == apns2.ReasonUnregistered,
		reason == apns2.ReasonExpiredToken:
		r.Outcome = sender.RetireToken
	case status == http.StatusBadRequest &&
		(reason == apns2.ReasonBadDeviceToken || reason == apns2.ReasonDeviceTokenNotForTopic):
		r.Outcome = sender.RetireToken
	case reason == apns2.ReasonExpiredProviderToken:
		// Rejected once more with a fresh token (authTransport), or while
		// the token source holds no fresher one: the next try may carry
		// one. Retried within the attempt budget, where a failure lost the
		// push.
		r.Outcome = sender.Retry
	default:
		r.Outcome = sender.FromStatus(status)
	}
	return r
}
