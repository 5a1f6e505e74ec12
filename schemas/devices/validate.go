package devices

import (
	"strconv"
	"strings"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Limits of the device routes.
const (
	// APNs device tokens are 32 bytes (64 hex characters) today; Apple
	// reserves the right to make them longer, so up to 100 bytes pass.
	MinAPNsTokenHex = 64
	MaxAPNsTokenHex = 200
	// FCM registration tokens are about 150-250 characters; the bound only
	// keeps a record and a request small.
	MaxFCMToken = 4096
	// MaxSyncChannels bounds the channels of one /channel/sync (PushGo's
	// 2000, src/api/handlers/core/channels/sync.rs). The 32 KiB body limit
	// bounds it further (about 400 items); each item may cost a password
	// hash on a cold cache.
	MaxSyncChannels = 2000
)

// Request bodies. Pointers tell an absent member from an empty one; they
// are decoded strictly (wire.Decode).

// RegisterRequest is the body of /device/register. ChannelType and
// ProviderToken are PushGo's (gateway 1.2.0-1.2.1 served /device/register
// with its route upsert, and the Android app's 1.2.0 betas register with
// them: app/src/main/java/io/ethan/pushgo/data/ChannelSubscriptionService.kt,
// upsertDeviceChannel): sent, they bind the route in the same call.
type RegisterRequest struct {
	DeviceKey     *string `json:"device_key"`
	Platform      *string `json:"platform"`
	ChannelType   *string `json:"channel_type"`
	ProviderToken *string `json:"provider_token"`
}

// BindRouteRequest is the body of /channel/device.
type BindRouteRequest struct {
	DeviceKey     *string `json:"device_key"`
	ChannelType   *string `json:"channel_type"`
	ProviderToken *string `json:"provider_token"`
	Platform      *string `json:"platform"`
}

// DeleteRouteRequest is the body of /channel/device/delete.
type DeleteRouteRequest struct {
	DeviceKey   *string `json:"device_key"`
	ChannelType *string `json:"channel_type"`
}

// RetireRequest is the body of /channel/device/provider-token/retire.
// DeviceKey and ChannelType are optional (sent by newer apps, spec
// section 3): the device key limits the retirement to that device's route,
// the channel type must be the platform's.
type RetireRequest struct {
	Platform      *string `json:"platform"`
	ProviderToken *string `json:"provider_token"`
	DeviceKey     *string `json:"device_key"`
	ChannelType   *string `json:"channel_type"`
}

// SubscribeRequest is the body of /channel/subscribe.
type SubscribeRequest struct {
	DeviceKey   *string `json:"device_key"`
	Password    *string `json:"password"`
	ChannelID   *string `json:"channel_id"`
	ChannelName *string `json:"channel_name"`
}

// UnsubscribeRequest is the body of /channel/unsubscribe.
type UnsubscribeRequest struct {
	DeviceKey *string `json:"device_key"`
	ChannelID *string `json:"channel_id"`
}

// SyncRequest is the body of /channel/sync.
type SyncRequest struct {
	DeviceKey *string               `json:"device_key"`
	Channels  []*SyncChannelRequest `json:"channels"`
}

// SyncChannelRequest is one item of SyncRequest.Channels.
type SyncChannelRequest struct {
	ChannelID *string `json:"channel_id"`
	Password  *string `json:"password"`
}

// Validated requests: trimmed and normalised.

// Register is a validated /device/register. DeviceKey is "" when none was
// sent (a new key is issued with reason IssueMissing). ChannelType is ""
// when no route is to be bound; otherwise it fits Platform and
// ProviderToken is its valid token.
type Register struct {
	DeviceKey     string
	Platform      string
	ChannelType   string
	ProviderToken string
}

// BindRoute is a validated /channel/device. Platform is "" when not sent
// (the registered platform is kept); when sent it is compatible with
// ChannelType.
type BindRoute struct {
	DeviceKey     string
	ChannelType   string
	ProviderToken string
	Platform      string
}

// DeleteRoute is a validated /channel/device/delete. ChannelType may be
// one this gateway never stores (private, wns): nothing is removed then.
type DeleteRoute struct {
	DeviceKey   string
	ChannelType string
}

// Served reports whether d's channel type is one a route can have here.
func (d *DeleteRoute) Served() bool { return ValidChannelType(d.ChannelType) }

// Retire is a validated /channel/device/provider-token/retire; ChannelType
// is the platform's. DeviceKey is "" when none was sent: the token is
// retired from whichever device holds it; otherwise only from that device.
type Retire struct {
	Platform      string
	ChannelType   string
	ProviderToken string
	DeviceKey     string
}

// Subscribe is a validated /channel/subscribe: exactly one of ChannelID
// (join) and ChannelName (create and join) is set.
type Subscribe struct {
	DeviceKey   string
	Password    string
	ChannelID   string
	ChannelName string
}

// Unsubscribe is a validated /channel/unsubscribe.
type Unsubscribe struct {
	DeviceKey string
	ChannelID string
}

// Sync is a validated /channel/sync: the items in the order sent; an
// empty list is valid (it unsubscribes every channel).
type Sync struct {
	DeviceKey string
	Channels  []SyncChannel
}

// SyncChannel is one item of a sync. With Err nil, ChannelID is canonical
// (and distinct from the other valid items') and Password valid. With Err
// set the item is malformed and answered as failed in its place, as PushGo
// answers a bad channel_id or password in its item rather than for the
// whole request (src/api/handlers/core/channels/sync.rs); ChannelID is then
// the id as sent, trimmed.
type SyncChannel struct {
	ChannelID string
	Password  string
	Err       *apierr.Error
}

// ValidateRegister validates /device/register. An absent, null or blank
// device_key asks for a new key; a present one must be well formed. A
// channel_type asks for the route to be bound too: it must be served here
// and fit the platform, and provider_token is then required; a
// provider_token without channel_type is refused.
func ValidateRegister(r *RegisterRequest) (*Register, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v Register
	if r.DeviceKey != nil && strings.TrimSpace(*r.DeviceKey) != "" {
		k, err := deviceKey(r.DeviceKey)
		if err != nil {
			return nil, err
		}
		v.DeviceKey = k
	}
	p, err := platform(r.Platform)
	if err != nil {
		return nil, err
	}
	v.Platform = p
	if !present(r.ChannelType) {
		if present(r.ProviderToken) {
			return nil, apierr.Fieldf(apierr.ChannelTypeRequired, "channel_type", "a provider_token is bound with its channel_type (apns or fcm)")
		}
		return &v, nil
	}
	if v.ChannelType, err = channelType(r.ChannelType); err != nil {
		return nil, err
	}
	if !Compatible(v.ChannelType, v.Platform) {
		return nil, apierr.Field(apierr.ChannelTypePlatformMismatch, "channel_type")
	}
	if v.ProviderToken, err = providerToken(r.ProviderToken, v.ChannelType); err != nil {
		return nil, err
	}
	return &v, nil
}

// ValidateBindRoute validates /channel/device: the token's format depends
// on the channel type, and a platform sent with it must fit the channel
// type (the registered platform is checked against the registry later).
func ValidateBindRoute(r *BindRouteRequest) (*BindRoute, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v BindRoute
	var err *apierr.Error
	if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
		return nil, err
	}
	if v.ChannelType, err = channelType(r.ChannelType); err != nil {
		return nil, err
	}
	if v.ProviderToken, err = providerToken(r.ProviderToken, v.ChannelType); err != nil {
		return nil, err
	}
	if r.Platform != nil {
		if strings.TrimSpace(*r.Platform) == "" {
			return nil, apierr.Fieldf(apierr.InvalidPlatform, "platform", "must not be empty when sent")
		}
		if v.Platform, err = platform(r.Platform); err != nil {
			return nil, err
		}
		if !Compatible(v.ChannelType, v.Platform) {
			return nil, apierr.Field(apierr.ChannelTypePlatformMismatch, "channel_type")
		}
	}
	return &v, nil
}

// ValidateDeleteRoute validates /channel/device/delete.
func ValidateDeleteRoute(r *DeleteRouteRequest) (*DeleteRoute, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v DeleteRoute
	var err *apierr.Error
	if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
		return nil, err
	}
	if v.ChannelType, err = anyChannelType(r.ChannelType); err != nil {
		return nil, err
	}
	return &v, nil
}

// ValidateRetire validates /channel/device/provider-token/retire; the
// token is checked in the format of the platform's channel type. A
// channel_type sent with it must be that one; a blank device_key or
// channel_type counts as absent.
func ValidateRetire(r *RetireRequest) (*Retire, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v Retire
	var err *apierr.Error
	if v.Platform, err = platform(r.Platform); err != nil {
		return nil, err
	}
	v.ChannelType = ChannelTypeFor(v.Platform)
	if present(r.ChannelType) {
		ct, err := channelType(r.ChannelType)
		if err != nil {
			return nil, err
		}
		if ct != v.ChannelType {
			return nil, apierr.Field(apierr.ChannelTypePlatformMismatch, "channel_type")
		}
	}
	if v.ProviderToken, err = providerToken(r.ProviderToken, v.ChannelType); err != nil {
		return nil, err
	}
	if present(r.DeviceKey) {
		if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
			return nil, err
		}
	}
	return &v, nil
}

// ValidateSubscribe validates /channel/subscribe. channel_id joins,
// channel_name creates and joins; a blank one counts as absent, and both or
// neither is channel_binding_invalid.
func ValidateSubscribe(r *SubscribeRequest) (*Subscribe, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v Subscribe
	var err *apierr.Error
	if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
		return nil, err
	}
	if v.Password, err = ops.ValidatePassword(r.Password); err != nil {
		return nil, err
	}
	hasID, hasName := present(r.ChannelID), present(r.ChannelName)
	switch {
	case hasID && hasName:
		return nil, apierr.Fieldf(apierr.ChannelBindingInvalid, "channel_id", "send channel_id to join or channel_name to create, not both")
	case !hasID && !hasName:
		return nil, apierr.Fieldf(apierr.ChannelBindingInvalid, "channel_id", "send channel_id to join or channel_name to create")
	case hasID:
		if v.ChannelID, err = ops.ValidateChannelID(r.ChannelID); err != nil {
			return nil, err
		}
	default:
		c, err := ops.ValidateChannelCreate(&ops.ChannelCreateRequest{ChannelName: r.ChannelName, Password: r.Password})
		if err != nil {
			return nil, err
		}
		v.ChannelName = c.Name
	}
	return &v, nil
}

// ValidateUnsubscribe validates /channel/unsubscribe.
func ValidateUnsubscribe(r *UnsubscribeRequest) (*Unsubscribe, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v Unsubscribe
	var err *apierr.Error
	if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
		return nil, err
	}
	if v.ChannelID, err = ops.ValidateChannelID(r.ChannelID); err != nil {
		return nil, err
	}
	return &v, nil
}

// ValidateSync validates /channel/sync. The request is refused (400) for
// what PushGo refuses as a whole: no device_key, no channels list, more
// than MaxSyncChannels items (channels_limit_exceeded), an item that is not
// an object or lacks channel_id or password (naming channels.<i>.<field>).
// Two items with the same channel are refused too (invalid_channels). A
// channel_id or password that is present but malformed fails only its item
// (SyncChannel.Err), as PushGo answers them in the item.
func ValidateSync(r *SyncRequest) (*Sync, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	var v Sync
	var err *apierr.Error
	if v.DeviceKey, err = deviceKey(r.DeviceKey); err != nil {
		return nil, err
	}
	if r.Channels == nil {
		return nil, apierr.Fieldf(apierr.InvalidChannels, "channels", "is required (send [] to unsubscribe every channel)")
	}
	if len(r.Channels) > MaxSyncChannels {
		return nil, apierr.Fieldf(apierr.ChannelsLimitExceeded, "channels", "%d items, at most %d", len(r.Channels), MaxSyncChannels)
	}
	seen := make(map[string]int, len(r.Channels))
	v.Channels = make([]SyncChannel, 0, len(r.Channels))
	for i, it := range r.Channels {
		at := "channels." + strconv.Itoa(i)
		if it == nil {
			return nil, apierr.Fieldf(apierr.InvalidChannels, at, "must be an object {channel_id, password}")
		}
		if it.ChannelID == nil {
			return nil, apierr.Within(at, apierr.Field(apierr.ChannelIDRequired, "channel_id"))
		}
		if it.Password == nil {
			return nil, apierr.Within(at, apierr.Field(apierr.PasswordRequired, "password"))
		}
		id, err := ops.ValidateChannelID(it.ChannelID)
		if err != nil {
			v.Channels = append(v.Channels, SyncChannel{ChannelID: strings.TrimSpace(*it.ChannelID), Err: apierr.Within(at, err)})
			continue
		}
		pw, err := ops.ValidatePassword(it.Password)
		if err != nil {
			v.Channels = append(v.Channels, SyncChannel{ChannelID: id, Err: apierr.Within(at, err)})
			continue
		}
		if j, dup := seen[id]; dup {
			return nil, apierr.Fieldf(apierr.InvalidChannels, at+".channel_id", "same channel as channels.%d", j)
		}
		seen[id] = i
		v.Channels = append(v.Channels, SyncChannel{ChannelID: id, Password: pw})
	}
	return &v, nil
}

func present(s *string) bool { return s != nil && strings.TrimSpace(*s) != "" }

func deviceKey(s *string) (string, *apierr.Error) {
	if !present(s) {
		return "", apierr.Field(apierr.DeviceKeyRequired, "device_key")
	}
	k, ok := NormalizeDeviceKey(strings.TrimSpace(*s))
	if !ok {
		return "", apierr.Field(apierr.InvalidDeviceKey, "device_key")
	}
	return k, nil
}

// platform: trimmed, case-insensitive, one of the five platforms.
func platform(s *string) (string, *apierr.Error) {
	if !present(s) {
		return "", apierr.Field(apierr.PlatformRequired, "platform")
	}
	p := strings.ToLower(strings.TrimSpace(*s))
	if !ValidPlatform(p) {
		return "", apierr.Field(apierr.InvalidPlatform, "platform")
	}
	return p, nil
}

// channelType: trimmed, case-insensitive, a channel type a route can have
// here (apns or fcm). PushGo's private transport is answered 503
// private_channel_disabled, the code the Android app recognises
// (app/src/main/java/io/ethan/pushgo/notifications/PrivateChannelClient.kt,
// isGatewayPrivateDisabledError); wns is named as not served.
func channelType(s *string) (string, *apierr.Error) {
	t, err := anyChannelType(s)
	switch {
	case err != nil:
		return "", err
	case t == ChannelTypePrivate:
		return "", apierr.Field(apierr.PrivateChannelDisabled, "channel_type")
	case t == ChannelTypeWNS:
		return "", apierr.Fieldf(apierr.InvalidChannelType, "channel_type", "wns (Windows push) is not served by this gateway; channel_type must be apns or fcm")
	}
	return t, nil
}

// anyChannelType: trimmed, case-insensitive, one of PushGo's channel types
// (apns, fcm, wns, private).
func anyChannelType(s *string) (string, *apierr.Error) {
	if !present(s) {
		return "", apierr.Field(apierr.ChannelTypeRequired, "channel_type")
	}
	t := strings.ToLower(strings.TrimSpace(*s))
	switch t {
	case ChannelTypeAPNs, ChannelTypeFCM, ChannelTypePrivate, ChannelTypeWNS:
		return t, nil
	}
	return "", apierr.Field(apierr.InvalidChannelType, "channel_type")
}

// providerToken: trimmed. APNs: 64-200 hex characters, stored lowercase.
// FCM: 1-4096 visible ASCII characters (no spaces or control characters),
// stored as sent.
func providerToken(s *string, channelType string) (string, *apierr.Error) {
	if !present(s) {
		return "", apierr.Field(apierr.ProviderTokenRequired, "provider_token")
	}
	t := strings.TrimSpace(*s)
	switch channelType {
	case ChannelTypeAPNs:
		if len(t) < MinAPNsTokenHex || len(t) > MaxAPNsTokenHex || !isHex(t) {
			return "", apierr.Fieldf(apierr.InvalidProviderToken, "provider_token", "an apns token must be %d-%d hexadecimal characters", MinAPNsTokenHex, MaxAPNsTokenHex)
		}
		return strings.ToLower(t), nil
	default:
		if len(t) > MaxFCMToken || !isVisibleASCII(t) {
			return "", apierr.Fieldf(apierr.InvalidProviderToken, "provider_token", "an fcm token must be 1-%d visible ASCII characters", MaxFCMToken)
		}
		return t, nil
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isVisibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
