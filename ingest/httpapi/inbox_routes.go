package httpapi

import (
	"context"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/devices"
)

// Inbox serves device inboxes (/v2/messages/pull and ack).
type Inbox interface {
	Pull(ctx context.Context, deviceKey, after string, limit int) (inbox.Page, error)
	Ack(ctx context.Context, deviceKey string, ids []string) (int, error)
}

const (
	maxPull = 200
	maxAck  = 200
)

type pullBody struct {
	DeviceKey *string `json:"device_key"`
	After     *string `json:"after"`
	Limit     *int    `json:"limit"`
}

type ackBody struct {
	DeviceKey   *string  `json:"device_key"`
	DeliveryIDs []string `json:"delivery_ids"`
}

type ackData struct {
	RequestedCount int `json:"requested_count"`
	RemovedCount   int `json:"removed_count"`
}

func (s *Server) routeInbox() {
	s.echo.POST("/v2/messages/pull", s.inboxPull)
	s.echo.POST("/v2/messages/ack", s.inboxAck)
}

// knownDevice validates a device key and requires the device to exist.
func (s *Server) knownDevice(c *echo.Context, raw *string) (string, *apierr.Error) {
	if raw == nil || strings.TrimSpace(*raw) == "" {
		return "", apierr.Field(apierr.DeviceKeyRequired, "device_key")
	}
	key, ok := devices.NormalizeDeviceKey(strings.TrimSpace(*raw))
	if !ok {
		return "", apierr.Field(apierr.InvalidDeviceKey, "device_key")
	}
	if _, found, err := s.opts.Devices.Device(c.Request().Context(), key); err != nil {
		return "", &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "registry unavailable; retry", RetryAfter: 1}
	} else if !found {
		return "", apierr.Field(apierr.DeviceNotFound, "device_key")
	}
	return key, nil
}

// inboxPull is POST /v2/messages/pull (as PushGo 1.3): non-destructive.
func (s *Server) inboxPull(c *echo.Context) error {
	var b pullBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := s.knownDevice(c, b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	limit := 100
	if b.Limit != nil {
		if *b.Limit < 1 || *b.Limit > maxPull {
			return writeErr(c, apierr.Fieldf(apierr.InvalidLimit, "limit", "must be 1..%d", maxPull))
		}
		limit = *b.Limit
	}
	after := ""
	if b.After != nil {
		after = strings.TrimSpace(*b.After)
	}
	page, err := s.opts.Inbox.Pull(c.Request().Context(), key, after, limit)
	if err != nil {
		s.log.Warn("http: inbox pull", "err", err)
		return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "inbox unavailable; retry", RetryAfter: 1})
	}
	return writeOK(c, page)
}

// inboxAck is POST /v2/messages/ack: removes acknowledged items.
func (s *Server) inboxAck(c *echo.Context) error {
	var b ackBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := s.knownDevice(c, b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if len(b.DeliveryIDs) == 0 || len(b.DeliveryIDs) > maxAck {
		return writeErr(c, apierr.Fieldf(apierr.InvalidJSONData, "delivery_ids", "must hold 1..%d ids", maxAck))
	}
	n, err := s.opts.Inbox.Ack(c.Request().Context(), key, b.DeliveryIDs)
	if err != nil {
		s.log.Warn("http: inbox ack", "err", err)
		return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "inbox unavailable; retry", RetryAfter: 1})
	}
	return writeOK(c, ackData{RequestedCount: len(b.DeliveryIDs), RemovedCount: n})
}
