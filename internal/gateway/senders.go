package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

// buildSenders makes the provider senders the configuration asks for. A
// provider's own keys (PUSHGO_APNS_KEY_FILE, _KEY_ID, _TEAM_ID;
// PUSHGO_FCM_CREDENTIALS_FILE, _PROJECT_ID) win; a provider without them
// takes its tokens from the PushGo token service when
// PUSHGO_TOKEN_SERVICE_URL is set (APNs topic default: the official app's
// bundle id). A provider with neither is left out: the pusher reports it
// at start and its deliveries fail visibly with not_configured receipts.
// A provider configured wrongly stops the start.
func buildSenders(c Config, log *slog.Logger) (map[payload.Provider]sender.Sender, error) {
	out := map[payload.Provider]sender.Sender{}
	var svc *tokenservice.Service
	if c.TokenServiceURL != "" {
		var err error
		if svc, err = tokenservice.New(tokenservice.Options{URL: c.TokenServiceURL, Logger: log}); err != nil {
			return nil, fmt.Errorf("PUSHGO_TOKEN_SERVICE_URL: %w", err)
		}
	}
	ownAPNs := c.APNsKeyFile != "" || c.APNsKeyID != "" || c.APNsTeamID != ""
	switch {
	case ownAPNs || (c.APNsTopic != "" && svc == nil):
		s, err := apns.New(apns.Options{KeyFile: c.APNsKeyFile, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID,
			Topic: c.APNsTopic, WatchTopic: c.APNsWatchTopic, Endpoint: c.APNsEndpoint, Connections: c.APNsConnections, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("APNs (PUSHGO_APNS_*): %w", err)
		}
		out[payload.APNs] = s
	case svc != nil:
		topic, env := cmp.Or(c.APNsTopic, tokenservice.OfficialAPNsTopic), apnsEnvironment(c.APNsEndpoint)
		watch := c.APNsWatchTopic
		if watch == "" && topic == tokenservice.OfficialAPNsTopic {
			watch = tokenservice.OfficialWatchAPNsTopic // the official watch app, as PushGo's WATCHOS_TOPIC
		}
		s, err := apns.New(apns.Options{TokenSource: svc.APNs(env), Topic: topic, WatchTopic: watch, Endpoint: c.APNsEndpoint,
			Connections: c.APNsConnections, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("APNs (PUSHGO_TOKEN_SERVICE_URL): %w", err)
		}
		log.Info("APNs: provider tokens from the PushGo token service", "environment", string(env), "topic", topic)
		out[payload.APNs] = s
	}
	switch {
	case c.FCMCredentialsFile != "" || c.FCMProjectID != "":
		s, err := fcm.New(fcm.Options{ProjectID: c.FCMProjectID, CredentialsFile: c.FCMCredentialsFile,
			Endpoint: c.FCMEndpoint, Logger: log})
		switch {
		case errors.Is(err, fcm.ErrCredentialsFile):
			// The file itself (unreadable, not JSON, a key that does not
			// parse): the one setting to mend.
			return nil, fmt.Errorf("PUSHGO_FCM_CREDENTIALS_FILE: %w", err)
		case err != nil:
			return nil, fmt.Errorf("FCM (PUSHGO_FCM_*): %w", err)
		}
		out[payload.FCM] = s
	case svc != nil:
		s, err := fcm.New(fcm.Options{AccessSource: svc.FCM(), Endpoint: c.FCMEndpoint, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("FCM (PUSHGO_TOKEN_SERVICE_URL): %w", err)
		}
		log.Info("FCM: access tokens and project from the PushGo token service")
		out[payload.FCM] = s
	}
	return out, nil
}

// apnsEnvironment is the token service environment whose tokens the APNs
// endpoint accepts: sandbox for "development" or an Apple sandbox host,
// production otherwise (PushGo's PUSHGO_SANDBOX_MODE picks both at once).
func apnsEnvironment(endpoint string) tokenservice.Environment {
	switch endpoint {
	case "", apns.Production:
		return tokenservice.Production
	case apns.Development:
		return tokenservice.Sandbox
	}
	if u, err := url.Parse(endpoint); err == nil &&
		(u.Hostname() == "api.sandbox.push.apple.com" || u.Hostname() == "api.development.push.apple.com") {
		return tokenservice.Sandbox
	}
	return tokenservice.Production
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
