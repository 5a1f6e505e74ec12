// Package fcm sends notifications to Firebase Cloud Messaging (HTTP v1)
// through the Firebase Admin SDK (firebase.google.com/go/v4/messaging).
//
// Request mapping (payload.Notification → FCM message):
//
//	token                          n.Token
//	data                           n.Data (all values strings)
//	android.priority               n.Priority: "high" or "normal"
//	android.collapse_key           n.CollapseID
//	android.ttl                    n.Expiration - now (absent when zero);
//	                               0s for n.NowOrNever
//	notification, android.notification
//	                               never: every push is data-only (see Message)
//
// Response mapping (see sender.Outcome):
//
//	200                                         Sent (ProviderID = message name)
//	UNREGISTERED (404)                          RetireToken
//	INVALID_ARGUMENT about the token (400)      RetireToken
//	429 QUOTA_EXCEEDED, 5xx (UNAVAILABLE, ...)  Retry (RetryAfter from Retry-After;
//	                                            Backoff a minute for QUOTA_EXCEEDED)
//	401 UNAUTHENTICATED                         Retry, after one more request with a
//	                                            fresh token (see accessTransport)
//	timeout, connection error                   Retry
//	no access token (the token source failed)   Retry "auth", nothing sent
//	anything else (other INVALID_ARGUMENT,
//	403 SENDER_ID_MISMATCH, ...)                Failed (Reason = FCM error code), after
//	                                            one more request with a fresh token for a 403
//	n.Expiration already passed                 Failed "expired", nothing sent
//
// One attempt per Send: the SDK would retry 503s and connection errors by
// itself, sleeping up to 2 minutes on a Retry-After. The sender records the
// first attempt below the SDK and stops the SDK there (see
// sender/internal/attempt), so retries follow the caller's sender.Policy.
package fcm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"github.com/go-json-experiment/json"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/internal/attempt"
	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
	"github.com/pushgo/gateway/schemas/delivery"
)

// DefaultSendTimeout bounds one Send when Options.SendTimeout is zero.
const DefaultSendTimeout = 10 * time.Second

// Scope is the OAuth 2 scope of FCM HTTP v1.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// maxTTL is FCM's largest android.ttl (28 days).
const maxTTL = 28 * 24 * time.Hour

// Options configure a Sender. One of CredentialsFile, TokenSource and
// AccessSource is required, and ProjectID unless the credentials file names
// it or the AccessSource supplies it. Application default credentials are
// never looked up, so a Sender never probes a metadata server.
type Options struct {
	// ProjectID is the Firebase project; default: project_id of the
	// credentials file. Must be empty with AccessSource.
	ProjectID string
	// CredentialsFile is a service account JSON key file.
	CredentialsFile string
	// TokenSource supplies OAuth 2 access tokens instead of a file (tests,
	// workload identity set up by the caller).
	TokenSource oauth2.TokenSource
	// AccessSource supplies access tokens and the project they are for
	// (the PushGo token service, pusher/sender/tokenservice), asked on
	// every request; see auth.go.
	AccessSource AccessSource
	// Endpoint overrides the FCM base URL (default
	// https://fcm.googleapis.com/v1); the request goes to
	// Endpoint + "/projects/<project>/messages:send".
	Endpoint string
	// Transport is the base HTTP transport below authentication; default
	// a clone of http.DefaultTransport.
	Transport http.RoundTripper

	// SendTimeout bounds one Send; default DefaultSendTimeout.
	SendTimeout time.Duration
	// Logger receives debug lines about failed sends and, with a
	// credentials file or token source, a warning for each failed access
	// token fetch (never a token or key); default: discard.
	Logger *slog.Logger
	// Now is the clock for TTLs and Retry-After dates; default time.Now.
	Now func() time.Time
}

// Sender is an FCM sender. It is safe for concurrent use.
type Sender struct {
	client  *messaging.Client
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
}

var _ sender.Sender = (*Sender)(nil)

// New validates opts and returns a Sender. It reads the credentials file
// and checks its key (see ErrCredentialsFile) but makes no network call
// (access tokens are fetched on first use: a key the token endpoint
// refuses, revoked or deleted, shows then, as a warning in Logger and
// pushes retried with reason "auth").
func New(opts Options) (*Sender, error) {
	var (
		ts      oauth2.TokenSource
		explain func(error) error // a credentials file's token fetch errors, made readable
	)
	switch {
	case (opts.CredentialsFile != "") && (opts.TokenSource != nil || opts.AccessSource != nil),
		opts.TokenSource != nil && opts.AccessSource != nil:
		return nil, errors.New("fcm: set one of credentials file, token source and access source")
	case opts.AccessSource != nil:
		if opts.ProjectID != "" {
			return nil, errors.New("fcm: the project id comes from the access source; leave ProjectID empty")
		}
		opts.ProjectID = sourcedProject
	case opts.CredentialsFile != "":
		b, sa, err := readCredentials(opts.CredentialsFile)
		if err != nil {
			return nil, err
		}
		if opts.ProjectID == "" {
			opts.ProjectID = sa.projectID
		}
		if ts, err = credentialsSource(b, opts.CredentialsFile, tokenservice.DefaultFetchTimeout); err != nil {
			return nil, err
		}
		explain = sa.explain
	case opts.TokenSource != nil:
		ts = opts.TokenSource
	default:
		return nil, errors.New("fcm: a credentials file, a token source or an access source is required")
	}
	if opts.ProjectID == "" {
		return nil, errors.New("fcm: project id is required")
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("fcm: endpoint must be an http(s) URL, got %q", opts.Endpoint)
		}
		opts.Endpoint = strings.TrimSuffix(opts.Endpoint, "/")
	}
	if opts.SendTimeout < 0 {
		return nil, errors.New("fcm: negative send timeout")
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
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}

	ctx := context.Background()
	src := opts.AccessSource
	if src == nil {
		var err error
		if src, err = oauthSource(ts, opts.ProjectID, explain, opts.Logger); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Transport: &attempt.Transport{Base: accessTransport(src, base)}}
	appOpts := []option.ClientOption{option.WithHTTPClient(hc)}
	if opts.Endpoint != "" {
		appOpts = append(appOpts, option.WithEndpoint(opts.Endpoint))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: opts.ProjectID}, appOpts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return &Sender{client: client, timeout: opts.SendTimeout, log: opts.Logger, now: opts.Now}, nil
}

// Name returns "fcm".
func (s *Sender) Name() string { return string(payload.FCM) }

// Message translates n into the FCM message the Sender would send at now.
// It returns false when n has expired.
//
// The message is data-only, as PushGo's (gateway src/providers/fcm.rs:
// token, data, android priority and ttl): a message with a notification
// block is shown by Android itself while the app is in the background and
// never reaches PushGoMessagingService.onMessageReceived, so the PushGo
// Android app would neither file it nor pull a wake-up's item. The app
// builds the visible notification from the data's title and body.
func Message(n payload.Notification, now time.Time) (*messaging.Message, bool) {
	android := &messaging.AndroidConfig{
		CollapseKey: n.CollapseID,
		Priority:    n.Priority.AndroidPriority(),
	}
	if !n.Expiration.IsZero() {
		ttl := n.Expiration.Sub(now).Truncate(time.Second)
		if ttl <= 0 {
			return nil, false
		}
		ttl = min(ttl, maxTTL)
		android.TTL = &ttl
	}
	if n.NowOrNever {
		// FCM's "now or never": a ttl of 0s is delivered at once or
		// dropped, never stored for a device that is not connected.
		var zero time.Duration
		android.TTL = &zero
	}
	return &messaging.Message{Token: n.Token, Data: n.Data, Android: android}, true
}

// Send implements sender.Sender.
func (s *Sender) Send(ctx context.Context, n payload.Notification) sender.Result {
	if n.Token == "" {
		return sender.Result{Outcome: sender.RetireToken, Reason: "missing_token"}
	}
	msg, ok := Message(n, s.now())
	if !ok {
		return sender.Result{Outcome: sender.Failed, Reason: "expired"}
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, s.timeout)
	defer cancelTimeout()
	actx, rec, cancel := attempt.Start(ctx, true)
	defer cancel()

	name, err := s.client.Send(actx, msg)
	if err == nil {
		return sender.Result{Outcome: sender.Sent, ProviderID: name, StatusCode: http.StatusOK}
	}
	res := s.classify(ctx, rec, err)
	s.log.LogAttrs(ctx, slog.LevelDebug, "fcm send failed",
		slog.String("delivery", delivery.RedactID(n.DeliveryID)), slog.String("result", res.String()))
	return res
}

// fcmError is the part of an FCM v1 error body the sender reads.
type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

const (
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
)

func (s *Sender) classify(ctx context.Context, rec *attempt.Record, err error) sender.Result {
	attempted, status, header, terr := rec.Result()
	if !attempted || status == 0 {
		switch {
		case ctx.Err() != nil:
			reason := "timeout"
			if errors.Is(ctx.Err(), context.Canceled) {
				reason = "canceled"
			}
			return sender.Result{Outcome: sender.Retry, Reason: reason}
		case bearer.IsCredential(terr):
			// No access token: the credentials file's token endpoint
			// refused the key (revoked, deleted) or the token service
			// failed. FCM was never asked; the cache has logged why (a
			// warning each failed fetch), and a later try may have a
			// token (a key replaced, the service back).
			return sender.Result{Outcome: sender.Retry, Reason: "auth"}
		case terr != nil:
			return sender.Result{Outcome: sender.Retry, Reason: "connection"}
		case !attempted:
			// The SDK refused the message before any request.
			return sender.Result{Outcome: sender.Failed, Reason: "invalid_message: " + err.Error()}
		}
		return sender.Result{Outcome: sender.Retry, Reason: "connection"}
	}

	var fe fcmError
	_ = json.Unmarshal(rec.Body(), &fe, json.RejectUnknownMembers(false))
	code, tokenErr := fe.Error.Status, false
	for _, d := range fe.Error.Details {
		switch d.Type {
		case fcmErrorType:
			if d.ErrorCode != "" {
				code = d.ErrorCode
			}
		case badRequestType:
			for _, v := range d.FieldViolations {
				if strings.Contains(strings.ToLower(v.Field), "token") {
					tokenErr = true
				}
			}
		}
	}
	if strings.Contains(strings.ToLower(fe.Error.Message), "registration token") {
		tokenErr = true
	}
	if code == "" {
		code = http.StatusText(status)
	}

	res := sender.Result{Reason: code, StatusCode: status}
	switch {
	case messaging.IsUnregistered(err) || code == "UNREGISTERED":
		res.Outcome = sender.RetireToken
	case (messaging.IsInvalidArgument(err) || code == "INVALID_ARGUMENT") && tokenErr:
		res.Outcome = sender.RetireToken
	case status == http.StatusUnauthorized:
		// UNAUTHENTICATED once more with a fresh token (accessTransport),
		// or within a moment of its fetch (the source fetches a rejected
		// token again only after tokenservice.DefaultRetryInterval): the
		// credential, not the push, is stale, and a later try with the
		// next token may pass. Retried within the attempt budget, where a
		// failure lost the push. A 403 (PERMISSION_DENIED,
		// SENDER_ID_MISMATCH: a device of another Firebase project) fails.
		res.Outcome = sender.Retry
	default:
		res.Outcome = sender.FromStatus(status)
	}
	if res.Outcome == sender.Retry {
		res.RetryAfter = sender.ParseRetryAfter(header.Get("Retry-After"), s.now())
		if code == "QUOTA_EXCEEDED" {
			// Google asks for exponential back-off from at least a minute
			// on a quota error (FCM's ErrorCode reference).
			res.Backoff = sender.FCMQuotaBackoff
		}
	}
	return res
}
