package httpapi

import (
	"context"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/devices"
)

// Inbox serves device inboxes: /v2/messages/pull and ack, and PushGo's
// legacy /messages/pull and ack.
type Inbox interface {
	Pull(ctx context.Context, deviceKey, after string, limit int) (inbox.Page, error)
	Get(ctx context.Context, deviceKey, deliveryID string) (jsontext.Value, error)
	Take(ctx context.Context, deviceKey, deliveryID string, limit int) ([]jsontext.Value, error)
	Ack(ctx context.Context, deviceKey string, ids []string) (int, error)
}

const (
	maxPull = 200
	maxAck  = 200
	// maxLegacyPull is how many items one legacy pull returns (PushGo's
	// pull_provider_items limit, src/api/handlers/core/pull.rs).
	maxLegacyPull = 512
)

// pullBody is the body of /v2/messages/pull. DeliveryID asks for the one
// item a wake-up push named, as the apps send it (Apple
// Shared/Services/ChannelSubscriptionService.swift, PullRequest; the
// watchOS notification extension's WatchPullRequest).
type pullBody struct {
	DeviceKey  *string `json:"device_key"`
	DeliveryID *string `json:"delivery_id"`
	After      *string `json:"after"`
	Limit      *int    `json:"limit"`
}

type ackBody struct {
	DeviceKey   *string  `json:"device_key"`
	DeliveryIDs []string `json:"delivery_ids"`
}

type ackData struct {
	RequestedCount int `json:"requested_count"`
	RemovedCount   int `json:"removed_count"`
}

// legacyPullBody is the body of PushGo's POST /messages/pull
// (src/api/handlers/core/pull.rs, PullRequest).
type legacyPullBody struct {
	DeviceKey  *string `json:"device_key"`
	DeliveryID *string `json:"delivery_id"`
}

// legacyPullData is its answer: {items: [{delivery_id, payload}]}, no
// has_more (PushGo's PullResponse).
type legacyPullData struct {
	Items []jsontext.Value `json:"items"`
}

// legacyAckBody is the body of PushGo's POST /messages/ack
// (src/api/handlers/core/ack.rs, AckRequest).
type legacyAckBody struct {
	DeviceKey  *string `json:"device_key"`
	DeliveryID *string `json:"delivery_id"`
}

// legacyAckData is its answer, PushGo's AckResponse: {removed}.
type legacyAckData struct {
	Removed bool `json:"removed"`
}

func (s *Server) routeInbox() {
	s.echo.POST("/v2/messages/pull", s.inboxPull)
	s.echo.POST("/v2/messages/ack", s.inboxAck)
	s.echo.POST("/messages/pull", s.legacyPull)
	s.echo.POST("/messages/ack", s.legacyAck)
}

// deviceKeyOf validates a device key (required, 32 hex, any case).
func deviceKeyOf(raw *string) (string, *apierr.Error) {
	if raw == nil || strings.TrimSpace(*raw) == "" {
		return "", apierr.Field(apierr.DeviceKeyRequired, "device_key")
	}
	key, ok := devices.NormalizeDeviceKey(strings.TrimSpace(*raw))
	if !ok {
		return "", apierr.Field(apierr.InvalidDeviceKey, "device_key")
	}
	return key, nil
}

// deliveryIDOf is a sent delivery_id, trimmed: "" when absent, 400
// delivery_id_required when sent blank (as PushGo's pull and ack).
func deliveryIDOf(raw *string) (string, *apierr.Error) {
	if raw == nil {
		return "", nil
	}
	id := strings.TrimSpace(*raw)
	if id == "" {
		return "", apierr.Field(apierr.DeliveryIDRequired, "delivery_id")
	}
	return id, nil
}

func (s *Server) inboxUnavailable(c *echo.Context, route string, err error) error {
	s.log.Warn("http: inbox", "route", route, "err", err)
	return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "inbox unavailable; retry", RetryAfter: 1})
}

// inboxPull is POST /v2/messages/pull (as PushGo 1.3): non-destructive.
// With delivery_id it answers the one item a wake-up push named
// ({items: [item]}, or no item when it is not there: acked, or not this
// device's), with has_more false; otherwise a page after "after". A device
// key never registered has an empty inbox, as in PushGo (its key's format
// only is checked): a 404 made the app's every sync fail until it
// registered again.
func (s *Server) inboxPull(c *echo.Context) error {
	var b pullBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := deviceKeyOf(b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	id, aerr := deliveryIDOf(b.DeliveryID)
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
	ctx := c.Request().Context()
	if id != "" {
		if after != "" {
			return writeErr(c, apierr.Fieldf(apierr.InvalidJSONData, "after", "send delivery_id (one item) or after (a page), not both"))
		}
		item, err := s.opts.Inbox.Get(ctx, key, id)
		if err != nil {
			return s.inboxUnavailable(c, "v2 pull", err)
		}
		page := inbox.Page{Items: []jsontext.Value{}}
		if item != nil {
			page.Items = append(page.Items, item)
		}
		return writeOK(c, page)
	}
	page, err := s.opts.Inbox.Pull(ctx, key, after, limit)
	if err != nil {
		return s.inboxUnavailable(c, "v2 pull", err)
	}
	return writeOK(c, page)
}

// inboxAck is POST /v2/messages/ack: removes acknowledged items.
func (s *Server) inboxAck(c *echo.Context) error {
	var b ackBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := deviceKeyOf(b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if len(b.DeliveryIDs) == 0 || len(b.DeliveryIDs) > maxAck {
		return writeErr(c, apierr.Fieldf(apierr.InvalidJSONData, "delivery_ids", "must hold 1..%d ids", maxAck))
	}
	n, err := s.opts.Inbox.Ack(c.Request().Context(), key, b.DeliveryIDs)
	if err != nil {
		return s.inboxUnavailable(c, "v2 ack", err)
	}
	return writeOK(c, ackData{RequestedCount: len(b.DeliveryIDs), RemovedCount: n})
}

// legacyPull is PushGo's POST /messages/pull, which the Android 1.2 app
// uses (app/src/main/java/io/ethan/pushgo/data/ChannelSubscriptionService.kt,
// pullMessages) and the Apple apps fall back to: {device_key, delivery_id?}
// answers {items: [{delivery_id, payload}]}, the named item or up to 512 in
// delivery order, and removes them (PushGo's pull is destructive; the
// legacy ack that follows then answers removed: false). As PushGo, a
// device the gateway does not know has no items.
func (s *Server) legacyPull(c *echo.Context) error {
	var b legacyPullBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := deviceKeyOf(b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	id, aerr := deliveryIDOf(b.DeliveryID)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	items, err := s.opts.Inbox.Take(c.Request().Context(), key, id, maxLegacyPull)
	if err != nil {
		if items == nil {
			return s.inboxUnavailable(c, "legacy pull", err)
		}
		// Read but not all removed: answer them; they come again.
		s.log.Warn("http: legacy pull left items in the inbox", "err", err)
	}
	return writeOK(c, legacyPullData{Items: items})
}

// legacyAck is PushGo's POST /messages/ack: {device_key, delivery_id}
// removes that item and answers {removed} (false when it was not there).
func (s *Server) legacyAck(c *echo.Context) error {
	var b legacyAckBody
	if aerr := decodeJSON(c, &b); aerr != nil {
		return writeErr(c, aerr)
	}
	key, aerr := deviceKeyOf(b.DeviceKey)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if b.DeliveryID == nil {
		return writeErr(c, apierr.Field(apierr.DeliveryIDRequired, "delivery_id"))
	}
	id, aerr := deliveryIDOf(b.DeliveryID)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	n, err := s.opts.Inbox.Ack(c.Request().Context(), key, []string{id})
	if err != nil {
		return s.inboxUnavailable(c, "legacy ack", err)
	}
	return writeOK(c, legacyAckData{Removed: n > 0})
}
