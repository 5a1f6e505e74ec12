package httpapi

import (
	"context"
	"errors"
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
	RetireTokenOf(ctx context.Context, channelType, token, key string, now time.Time) (bool, error)
	Subscribe(ctx context.Context, key, channelID string, now time.Time) (bool, error)
	Unsubscribe(ctx context.Context, key, channelID string) (bool, error)
	Channels(ctx context.Context, key string) ([]string, error)
}

// routeDevices adds the device routes (spec section 3) and the
// subscription routes of section 2, as the PushGo apps call them. An
// unknown device key answers 404 device_key_not_found on every one of them:
// the code on which the apps register again (Apple
// Shared/Application/ChannelSubscriptionController.swift,
// isDeviceKeyNotFoundError; Android ChannelSubscriptionRepository.kt and
// PrivateChannelClient.kt, isDeviceKeyMissing*).
func (s *Server) routeDevices() {
	e := s.echo
	e.POST("/device/register", s.deviceRegister, s.refuseOnFullDisk)
	e.POST("/channel/device", s.deviceBindRoute, s.refuseOnFullDisk)
	e.POST("/channel/device/delete", s.deviceDeleteRoute, s.refuseOnFullDisk)
	e.POST("/channel/device/provider-token/retire", s.deviceRetireToken, s.refuseOnFullDisk)
	e.POST("/channel/subscribe", s.channelSubscribe, s.refuseOnFullDisk)
	e.POST("/channel/unsubscribe", s.channelUnsubscribe, s.refuseOnFullDisk)
	e.POST("/channel/sync", s.channelSync, s.refuseOnFullDisk)
	e.GET("/gateway/profile", s.gatewayProfile)
}

// gatewayProfile is PushGo's GET /gateway/profile: what transports the
// gateway offers a device. This one has no private transport, and says so:
// the Android app asks before it offers or falls back to the private
// channel (PrivateChannelClient.kt gatewayPrivateChannelEnabled), and acts
// only on an answer of false; on a 404 it offered the private mode, cleared
// its FCM token for it, and on a phone without Google services moved into
// it silently, where every /channel/device then failed
// private_channel_disabled.
func (s *Server) gatewayProfile(c *echo.Context) error {
	return writeOK(c, gatewayProfile{})
}

// gatewayProfile is PushGo's answer with the private module off
// (private/runtime.rs GatewayProfileResponse::private_disabled): both names
// of the flag, and no transport hints.
type gatewayProfile struct {
	PrivateChannelEnabled bool `json:"private_channel_enabled"`
	PrivateEnabled        bool `json:"private_enabled"`
}

type deviceRegistered struct {
	DeviceKey    string `json:"device_key"`
	IssuedNewKey bool   `json:"issued_new_key"`
	IssueReason  string `json:"issue_reason,omitempty"`
	// ChannelType is the route bound by the same call (channel_type sent).
	ChannelType string `json:"channel_type,omitempty"`
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

// syncItem is one item of /channel/sync's answer, as PushGo's
// ChannelSyncResult (src/api/handlers/core/channels/types.rs): a failed
// item carries error, error_code and problem; a subscribed one its
// channel_name.
type syncItem struct {
	ChannelID   string          `json:"channel_id"`
	ChannelName string          `json:"channel_name,omitempty"`
	Subscribed  bool            `json:"subscribed"`
	Created     bool            `json:"created"`
	Error       string          `json:"error,omitempty"`
	ErrorCode   apierr.Code     `json:"error_code,omitempty"`
	Problem     *apierr.Problem `json:"problem,omitzero"`
}

// channelSynced is /channel/sync's answer: PushGo's ChannelSyncResponse
// {total, success, failed, channels} (the Apple app fails to decode an
// answer without the integer success and failed:
// Shared/Services/ChannelSubscriptionService.swift, SyncPayload), plus the
// device key and the channels the sync removed.
type channelSynced struct {
	Total    int        `json:"total"`
	Success  int        `json:"success"`
	Failed   int        `json:"failed"`
	Channels []syncItem `json:"channels"`
	// DeviceKey and Unsubscribed are additions to PushGo's answer.
	DeviceKey string `json:"device_key"`
	// Unsubscribed lists the channels removed because the sync did not
	// list them (only when every listed channel succeeded).
	Unsubscribed []string `json:"unsubscribed"`
}

// registryUnavailable is the answer when the device registry cannot be
// read or written: nothing (or nothing more) was changed; retry.
func (s *Server) registryUnavailable(c *echo.Context, what string, err error) error {
	if errors.Is(err, devices.ErrDeviceNotFound) {
		// Gone since the route found it (the idle devices' sweep): the
		// apps register again on this code, and a retry would not pass.
		return writeErr(c, apierr.Field(apierr.DeviceKeyNotFound, "device_key"))
	}
	s.log.Warn("http: device registry failed", "route", c.Request().URL.Path, "err", err)
	return writeErr(c, s.storeOr(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: what + "; retry", RetryAfter: 1}))
}

// deviceRegister is POST /device/register: it issues or confirms the
// device key and, when channel_type and provider_token are sent (PushGo
// 1.2.0-1.2.1's combined register), binds the route in the same call.
func (s *Server) deviceRegister(c *echo.Context) error {
	var req schema.RegisterRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateRegister(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ctx, now := c.Request().Context(), s.opts.Now()
	if aerr := s.lim.DeviceRegister(ctx); aerr != nil {
		return writeErr(c, aerr)
	}
	if !s.lim.DeviceRoom(ctx) {
		// At the cap only a device the gateway knows registers (again).
		known := false
		if v.DeviceKey != "" {
			var err error
			if _, known, err = s.opts.Devices.Device(ctx, v.DeviceKey); err != nil {
				return s.registryUnavailable(c, "device registry unavailable", err)
			}
		}
		if !known {
			return writeErr(c, s.lim.DeviceLimit())
		}
	}
	res, err := s.opts.Devices.Register(ctx, v.DeviceKey, v.Platform, now)
	if err != nil {
		return s.registryUnavailable(c, "device could not be registered", err)
	}
	if res.IssuedNewKey {
		s.lim.DeviceAdded()
	}
	out := deviceRegistered{DeviceKey: res.Device.Key, IssuedNewKey: res.IssuedNewKey, IssueReason: res.Reason}
	if v.ChannelType != "" {
		_, err := s.opts.Devices.BindRoute(ctx, res.Device.Key, v.ChannelType, v.ProviderToken, "", now)
		if err != nil && !errors.Is(err, devices.ErrDeviceNotFound) && !errors.Is(err, devices.ErrPlatformMismatch) {
			return s.registryUnavailable(c, "route could not be stored (the device is registered: repeat the call with its device_key)", err)
		}
		if err != nil {
			// The device changed under the call (another register of its
			// key to another platform, or its removal): a retry cannot
			// pass, so the answer is the one /channel/device gives.
			return s.bindRouteRefused(c, err, v.ChannelType)
		}
		out.ChannelType = v.ChannelType
	}
	return writeOK(c, out)
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
	if errors.Is(err, devices.ErrDeviceNotFound) || errors.Is(err, devices.ErrPlatformMismatch) {
		return s.bindRouteRefused(c, err, v.ChannelType)
	}
	if err != nil {
		return s.registryUnavailable(c, "route could not be stored", err)
	}
	return writeOK(c, deviceRoute{DeviceKey: v.DeviceKey, ChannelType: v.ChannelType})
}

// bindRouteRefused answers a BindRoute refused for the device it names:
// devices.ErrDeviceNotFound or devices.ErrPlatformMismatch.
func (s *Server) bindRouteRefused(c *echo.Context, err error, channelType string) error {
	if errors.Is(err, devices.ErrDeviceNotFound) {
		return writeErr(c, apierr.Field(apierr.DeviceKeyNotFound, "device_key"))
	}
	return writeErr(c, apierr.Fieldf(apierr.ChannelTypePlatformMismatch, "channel_type",
		"%s does not fit the device's registered platform (apns needs ios, ipados, macos or watchos; fcm needs android)", channelType))
}

// deviceDeleteRoute is POST /channel/device/delete. A channel type of
// PushGo's that a route never has here (private, wns) removes nothing: the
// Android app deletes its private route when it leaves a gateway
// (ChannelSubscriptionRepository.kt, cleanupPreviousGatewayDeviceRoute).
func (s *Server) deviceDeleteRoute(c *echo.Context) error {
	var req schema.DeleteRouteRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateDeleteRoute(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if !v.Served() {
		if ok, err := s.requireDevice(c, v.DeviceKey); !ok {
			return err
		}
		return writeOK(c, deviceRouteDeleted{DeviceKey: v.DeviceKey, ChannelType: v.ChannelType, Removed: false})
	}
	removed, err := s.opts.Devices.DeleteRoute(c.Request().Context(), v.DeviceKey, v.ChannelType, s.opts.Now())
	switch {
	case errors.Is(err, devices.ErrDeviceNotFound):
		return writeErr(c, apierr.Field(apierr.DeviceKeyNotFound, "device_key"))
	case err != nil:
		return s.registryUnavailable(c, "route could not be removed", err)
	}
	return writeOK(c, deviceRouteDeleted{DeviceKey: v.DeviceKey, ChannelType: v.ChannelType, Removed: removed})
}

// deviceRetireToken is POST /channel/device/provider-token/retire. It
// always answers {retired: true} (as PushGo): after it no device is pushed
// through the token, which is all the caller asks. With a device_key only
// that device's route is retired; a token another device holds now stays.
func (s *Server) deviceRetireToken(c *echo.Context) error {
	var req schema.RetireRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := schema.ValidateRetire(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if _, err := s.opts.Devices.RetireTokenOf(c.Request().Context(), v.ChannelType, v.ProviderToken, v.DeviceKey, s.opts.Now()); err != nil {
		return s.registryUnavailable(c, "token could not be retired", err)
	}
	return writeOK(c, tokenRetired{Retired: true})
}

// requireDevice answers 404 device_key_not_found (or 503) unless the
// device exists; ok reports whether the handler may go on.
func (s *Server) requireDevice(c *echo.Context, key string) (ok bool, err error) {
	_, found, gerr := s.opts.Devices.Device(c.Request().Context(), key)
	if gerr != nil {
		return false, s.registryUnavailable(c, "device registry unavailable", gerr)
	}
	if !found {
		return false, writeErr(c, apierr.Field(apierr.DeviceKeyNotFound, "device_key"))
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
		if aerr := s.lim.ChannelCreate(ctx); aerr != nil {
			return writeErr(c, aerr)
		}
		var err error
		if ch, err = s.channels.Create(ctx, v.ChannelName, v.Password, s.opts.Now()); err != nil {
			s.log.Warn("http: channel create failed", "err", err)
			return writeErr(c, s.storeOr(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "channel could not be stored; retry", RetryAfter: 1}))
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

// channelSync is POST /channel/sync, as PushGo's channel_sync
// (src/api/handlers/core/channels/sync.rs): every listed channel whose
// password checks is subscribed; a malformed item, an unknown channel or a
// wrong password fails its item (with error, error_code and problem) and
// changes nothing for that channel; channels not listed are unsubscribed
// only when every item succeeded. Every password is checked before
// anything is written, so a registry failure while checking changes
// nothing.
//
// The items are checked in order, one at a time. PushGo checks them all;
// here the checking stops after maxSyncMismatches passwords that do not
// match: the items after them fail with password_check_skipped, unchecked,
// so one sync costs at most that many failed password hashes however many
// items it lists. Until 4 December the first mismatch stopped it: a device
// whose first channel's password had changed was left unsubscribed from
// every channel after it until its next sync (the apps drop the channel
// refused password_mismatch and ignore the other codes). A refusal by the
// password back-off (429) answers the whole sync, nothing written.
// maxSyncMismatches is how many wrong passwords one /channel/sync checks
// before it skips the rest: a device's channels whose passwords were
// changed since its last sync are a few, and each failed check is a
// deliberately slow hash.
const maxSyncMismatches = 8

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

	names := make([]string, len(v.Channels))
	errs := make([]*apierr.Error, len(v.Channels))
	mismatches, checked, backedOff := 0, 0, false
	for i, it := range v.Channels {
		switch {
		case it.Err != nil:
			errs[i] = it.Err
			continue
		case mismatches == maxSyncMismatches || backedOff:
			errs[i] = apierr.New(apierr.PasswordCheckSkipped)
			continue
		}
		ch, aerr := s.channels.Authorize(ctx, it.ChannelID, it.Password)
		names[i], errs[i] = ch.Name, aerr
		switch {
		case aerr == nil || aerr.Code == apierr.ChannelNotFound:
			checked++
			continue
		case aerr.Code == apierr.TooManyPasswordFailures && checked > 0:
			// This sync's own wrong passwords crossed the address's
			// budget: the channels checked so far are synced, the rest
			// skipped, rather than the whole sync refused (and every
			// later one, until the failures are forgotten).
			errs[i], backedOff = apierr.New(apierr.PasswordCheckSkipped), true
			continue
		case aerr.Code != apierr.PasswordMismatch:
			return writeErr(c, aerr) // 429, 503, 500: nothing written, retry the whole sync
		}
		checked++
		mismatches++
	}
	out := channelSynced{Total: len(v.Channels), Channels: make([]syncItem, len(v.Channels)), DeviceKey: v.DeviceKey, Unsubscribed: []string{}}
	for i, it := range v.Channels {
		out.Channels[i] = syncItem{ChannelID: it.ChannelID}
		if e := errs[i]; e != nil {
			item := &out.Channels[i]
			item.Error, item.ErrorCode, item.Problem = problemOf(c, e)
			out.Failed++
			continue
		}
		out.Channels[i].ChannelName, out.Channels[i].Subscribed = names[i], true
		out.Success++
	}

	now := s.opts.Now()
	listed := make(map[string]bool, len(v.Channels))
	for i, it := range v.Channels {
		if errs[i] != nil {
			continue
		}
		listed[it.ChannelID] = true
		if _, err := s.opts.Devices.Subscribe(ctx, v.DeviceKey, it.ChannelID, now); err != nil {
			return s.registryUnavailable(c, "subscriptions could not be stored (the sync is safe to repeat)", err)
		}
	}
	if out.Failed == 0 {
		current, err := s.opts.Devices.Channels(ctx, v.DeviceKey)
		if err != nil {
			return s.registryUnavailable(c, "subscriptions could not be listed (the sync is safe to repeat)", err)
		}
		for _, id := range current {
			if listed[id] {
				continue
			}
			removed, err := s.opts.Devices.Unsubscribe(ctx, v.DeviceKey, id)
			if err != nil {
				return s.registryUnavailable(c, "subscriptions could not be removed (the sync is safe to repeat)", err)
			}
			// Listed as one this sync removed only when it did: the list
			// may hold a channel removed through another replica an
			// instant before.
			if removed {
				out.Unsubscribed = append(out.Unsubscribed, id)
			}
		}
	}
	return writeOK(c, out)
}
