package httpapi

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/schemas/apierr"
	schema "github.com/pushgo/gateway/schemas/devices"
)

// Devices is the device and subscription registry as the handlers use it
// (implemented by broker/devices.Registry). Its errors are
// devices.ErrDeviceNotFound, devices.ErrPlatformMismatch or broker errors.
type Devices interface {
	Device(ctx context.Context, key string) (schema.Device, bool, error)
	Register(ctx context.Context, key, platform string, now time.Time) (devices.RegisterResult, error)
	BindRoute(ctx context.Context, key, channelType, token, platform string, now time.Time) (schema.Device, error)
	DeleteRoute(ctx context.Context, key, channelType string, now time.Time) (bool, error)
	RetireToken(ctx context.Context, channelType, token string, now time.Time) (bool, error)
	Subscribe(ctx context.Context, key, channelID string, now time.Time) (bool, error)
	Unsubscribe(ctx context.Context, key, channelID string) (bool, error)
	Channels(ctx context.Context, key string) ([]string, error)
}

// routeDevices adds the device routes (spec section 3) and the
// subscription routes of section 2.
func (s *Server) routeDevices() {
	e := s.echo
	e.POST("/device/register", s.deviceRegister)
	e.POST("/channel/device", s.deviceBindRoute)
	e.POST("/channel/device/delete", s.deviceDeleteRoute)
	e.POST("/channel/device/provider-token/retire", s.deviceRetireToken)
	e.POST("/channel/subscribe", s.channelSubscribe)
	e.POST("/channel/unsubscribe", s.channelUnsubscribe)
	e.POST("/channel/sync", s.channelSync)
}

type deviceRegistered struct {
	DeviceKey    string `json:"device_key"`
	IssuedNewKey bool   `json:"issued_new_key"`
	IssueReason  string `json:"issue_reason,omitempty"`
}

type deviceRoute struct {
	DeviceKey   string `json:"device_key"`
	ChannelType string `json:"channel_type"`
}

type deviceRouteDeleted struct {
	DeviceKey   string `json:"device_key"`
	ChannelType string `json:"channel_type"`
	Removed     bool   `json:"removed"`
}

type tokenRetired struct {
	Retired bool `json:"retired"`
}

type channelSubscribed struct {
	ChannelID   string `json:"channel_id"`
	ChannelName string `json:"channel_name"`
	Created     bool   `json:"created"`
	Subscribed  bool   `json:"subscribed"`
}

type channelUnsubscribed struct {
	ChannelID string `json:"channel_id"`
	Removed   bool   `json:"removed"`
}

type syncItem struct {
	ChannelID   string       `json:"channel_id"`
	ChannelName string       `json:"channel_name,omitempty"`
	Subscribed  bool         `json:"subscribed"`
	ErrorCode   *apierr.Code `json:"error_code,omitempty"`
}

type channelSynced struct {
	DeviceKey string     `json:"device_key"`
	Channels  []syncItem `json:"channels"`
	// Unsubscribed lists the channels removed because the sync did not
	// list them (only when every listed channel succeeded).
	Unsubscribed []string `json:"unsubscribed"`
}

// registryUnavailable is the answer when the device registry cannot be
// read or written: nothing (or nothing more) was changed; retry.
func (s *Server) registryUnavailable(c *echo.Context, what string, err error) error {
	s.log.Warn("http: device registry failed", "route", c.Request().URL.Path, "err", err)
	return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: what + "; retry", RetryAfter: 1})
}

func (s *Server) deviceRegister(c *echo.Context) error {
	var req schema.RegisterRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateRegister(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	res, err := s.opts.Devices.Register(c.Request().Context(), v.DeviceKey, v.Platform, s.opts.Now())
	if err != nil {
		return s.registryUnavailable(c, "device could not be registered", err)
	}
	return writeOK(c, deviceRegistered{DeviceKey: res.Device.Key, IssuedNewKey: res.IssuedNewKey, IssueReason: res.Reason})
}

func (s *Server) deviceBindRoute(c *echo.Context) error {
	var req schema.BindRouteRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateBindRoute(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	_, err := s.opts.Devices.BindRoute(c.Request().Context(), v.DeviceKey, v.ChannelType, v.ProviderToken, v.Platform, s.opts.Now())
	switch {
	case errors.Is(err, devices.ErrDeviceNotFound):
		return writeErr(c, apierr.New(apierr.DeviceNotFound))
	case errors.Is(err, devices.ErrPlatformMismatch):
		return writeErr(c, apierr.Fieldf(apierr.ChannelTypePlatformMismatch, "channel_type",
			"%s does not fit the device's registered platform (apns needs ios, ipados, macos or watchos; fcm needs android)", v.ChannelType))
	case err != nil:
		return s.registryUnavailable(c, "route could not be stored", err)
	}
	return writeOK(c, deviceRoute{DeviceKey: v.DeviceKey, ChannelType: v.ChannelType})
}

func (s *Server) deviceDeleteRoute(c *echo.Context) error {
	var req schema.DeleteRouteRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateDeleteRoute(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	removed, err := s.opts.Devices.DeleteRoute(c.Request().Context(), v.DeviceKey, v.ChannelType, s.opts.Now())
	switch {
	case errors.Is(err, devices.ErrDeviceNotFound):
		return writeErr(c, apierr.New(apierr.DeviceNotFound))
	case err != nil:
		return s.registryUnavailable(c, "route could not be removed", err)
	}
	return writeOK(c, deviceRouteDeleted{DeviceKey: v.DeviceKey, ChannelType: v.ChannelType, Removed: removed})
}

func (s *Server) deviceRetireToken(c *echo.Context) error {
	var req schema.RetireRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateRetire(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	// An unknown token is retired too: after this call no device is pushed
	// through it, which is all the caller asks (as PushGo, always true).
	if _, err := s.opts.Devices.RetireToken(c.Request().Context(), v.ChannelType, v.ProviderToken, s.opts.Now()); err != nil {
		return s.registryUnavailable(c, "token could not be retired", err)
	}
	return writeOK(c, tokenRetired{Retired: true})
}

// requireDevice answers 404 device_not_found (or 503) unless the device
// exists; ok reports whether the handler may go on.
func (s *Server) requireDevice(c *echo.Context, key string) (ok bool, err error) {
	_, found, gerr := s.opts.Devices.Device(c.Request().Context(), key)
	if gerr != nil {
		return false, s.registryUnavailable(c, "device registry unavailable", gerr)
	}
	if !found {
		return false, writeErr(c, apierr.New(apierr.DeviceNotFound))
	}
	return true, nil
}

func (s *Server) channelSubscribe(c *echo.Context) error {
	var req schema.SubscribeRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateSubscribe(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if ok, err := s.requireDevice(c, v.DeviceKey); !ok {
		return err
	}
	ctx := c.Request().Context()
	var ch registry.Channel
	created := false
	if v.ChannelID != "" {
		if ch, aerr = s.channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
			return writeErr(c, aerr)
		}
	} else {
		var err error
		if ch, err = s.channels.Create(ctx, v.ChannelName, v.Password, s.opts.Now()); err != nil {
			s.log.Warn("http: channel create failed", "err", err)
			return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "channel could not be stored; retry", RetryAfter: 1})
		}
		created = true
	}
	if _, err := s.opts.Devices.Subscribe(ctx, v.DeviceKey, ch.ID, s.opts.Now()); err != nil {
		return s.registryUnavailable(c, "subscription could not be stored", err)
	}
	return writeOK(c, channelSubscribed{ChannelID: ch.ID, ChannelName: ch.Name, Created: created, Subscribed: true})
}

func (s *Server) channelUnsubscribe(c *echo.Context) error {
	var req schema.UnsubscribeRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateUnsubscribe(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if ok, err := s.requireDevice(c, v.DeviceKey); !ok {
		return err
	}
	removed, err := s.opts.Devices.Unsubscribe(c.Request().Context(), v.DeviceKey, v.ChannelID)
	if err != nil {
		return s.registryUnavailable(c, "subscription could not be removed", err)
	}
	return writeOK(c, channelUnsubscribed{ChannelID: v.ChannelID, Removed: removed})
}

// channelSync makes the device's subscriptions match the list: every
// listed channel whose password checks is subscribed; an unknown channel
// or a wrong password is reported in its item (and changes nothing for that
// channel); channels not listed are unsubscribed only when every listed
// item succeeded (as PushGo). Every password is checked before anything is
// written, so a registry failure while checking changes nothing.
func (s *Server) channelSync(c *echo.Context) error {
	var req schema.SyncRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateSync(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if ok, err := s.requireDevice(c, v.DeviceKey); !ok {
		return err
	}
	ctx := c.Request().Context()

	// Check every item concurrently; the registry bounds the hashing.
	names := make([]string, len(v.Channels))
	errs := make([]*apierr.Error, len(v.Channels))
	var wg sync.WaitGroup
	for i, it := range v.Channels {
		wg.Go(func() {
			ch, aerr := s.channels.Authorize(ctx, it.ChannelID, it.Password)
			names[i], errs[i] = ch.Name, aerr
		})
	}
	wg.Wait()
	items := make([]syncItem, len(v.Channels))
	allOK := true
	for i, it := range v.Channels {
		items[i] = syncItem{ChannelID: it.ChannelID, ChannelName: names[i], Subscribed: errs[i] == nil}
		if e := errs[i]; e != nil {
			if e.Code != apierr.ChannelNotFound && e.Code != apierr.PasswordMismatch {
				return writeErr(c, e) // 503/500: nothing written, retry the whole sync
			}
			code := e.Code
			items[i].ErrorCode, allOK = &code, false
		}
	}

	now := s.opts.Now()
	listed := make(map[string]bool, len(v.Channels))
	for i, it := range v.Channels {
		listed[it.ChannelID] = true
		if errs[i] != nil {
			continue
		}
		if _, err := s.opts.Devices.Subscribe(ctx, v.DeviceKey, it.ChannelID, now); err != nil {
			return s.registryUnavailable(c, "subscriptions could not be stored (the sync is safe to repeat)", err)
		}
	}
	unsubscribed := []string{}
	if allOK {
		current, err := s.opts.Devices.Channels(ctx, v.DeviceKey)
		if err != nil {
			return s.registryUnavailable(c, "subscriptions could not be listed (the sync is safe to repeat)", err)
		}
		for _, id := range current {
			if listed[id] {
				continue
			}
			if _, err := s.opts.Devices.Unsubscribe(ctx, v.DeviceKey, id); err != nil {
				return s.registryUnavailable(c, "subscriptions could not be removed (the sync is safe to repeat)", err)
			}
			unsubscribed = append(unsubscribed, id)
		}
	}
	return writeOK(c, channelSynced{DeviceKey: v.DeviceKey, Channels: items, Unsubscribed: unsubscribed})
}
