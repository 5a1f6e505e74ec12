package gateway

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/fcm"
)

// buildSenders makes the provider senders the configuration asks for. A
// provider with no configuration is left out: the pusher reports it at
// start and its deliveries fail visibly with not_configured receipts. A
// provider configured wrongly stops the start.
func buildSenders(c Config, log *slog.Logger) (map[payload.Provider]sender.Sender, error) {
	out := map[payload.Provider]sender.Sender{}
	if c.APNsKeyFile != "" || c.APNsKeyID != "" || c.APNsTeamID != "" || c.APNsTopic != "" {
		s, err := apns.New(apns.Options{KeyFile: c.APNsKeyFile, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID,
			Topic: c.APNsTopic, Endpoint: c.APNsEndpoint, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("APNs (PUSHGO_APNS_*): %w", err)
		}
		out[payload.APNs] = s
	}
	if c.FCMCredentialsFile != "" || c.FCMProjectID != "" {
		s, err := fcm.New(fcm.Options{ProjectID: c.FCMProjectID, CredentialsFile: c.FCMCredentialsFile,
			Endpoint: c.FCMEndpoint, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("FCM (PUSHGO_FCM_*): %w", err)
		}
		out[payload.FCM] = s
	}
	return out, nil
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
