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
	// MaxSyncChannels bounds the channels of one /channel/sync: each item
	// may cost a password hash on a cold cache.
	MaxSyncChannels = 128
)

// Request bodies. Pointers tell an absent member from an empty one; they
// are decoded strictly (wire.Decode).

// RegisterRequest is the body of /device/register.
type RegisterRequest struct {
	DeviceKey *string `json:"device_key"`
	Platform  *string `json:"platform"`
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
type RetireRequest struct {
	Platform      *string `json:"platform"`
	ProviderToken *string `json:"provider_token"`
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
// sent (a new key is issued with reason IssueMissing).
type Register struct {
	DeviceKey string
	Platform  string
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

// DeleteRoute is a validated /channel/device/delete.
type DeleteRoute struct {
	DeviceKey   string
	ChannelType string
}

// Retire is a validated /channel/device/provider-token/retire; ChannelType
// is the platform's.
type Retire struct {
	Platform      string
	ChannelType   string
	ProviderToken string
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

// Sync is a validated /channel/sync: channel ids are canonical and
// distinct; an empty list is valid (it unsubscribes every channel).
type Sync struct {
	DeviceKey string
	Channels  []SyncChannel
}

// SyncChannel is one validated item of a sync.
type SyncChannel struct {
	ChannelID string
	Password  string
}

// ValidateRegister validates /device/register. An absent, null or blank
// device_key asks for a new key; a present one must be well formed.
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
	if v.ChannelType, err = channelType(r.ChannelType); err != nil {
		return nil, err
	}
	return &v, nil
}

// ValidateRetire validates /channel/device/provider-token/retire; the
// token is checked in the format of the platform's channel type.
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
	if v.ProviderToken, err = providerToken(r.ProviderToken, v.ChannelType); err != nil {
		return nil, err
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

// ValidateSync validates /channel/sync. Every item is checked before
// anything is done: a malformed item rejects the whole request (400 naming
// channels.<i>.<field>); per-item results are only for the registry's
// answers (unknown channel, wrong password).
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
		return nil, apierr.Fieldf(apierr.InvalidChannels, "channels", "at most %d items", MaxSyncChannels)
	}
	seen := make(map[string]int, len(r.Channels))
	v.Channels = make([]SyncChannel, 0, len(r.Channels))
	for i, it := range r.Channels {
		at := "channels." + strconv.Itoa(i)
		if it == nil {
			return nil, apierr.Fieldf(apierr.InvalidChannels, at, "must be an object {channel_id, password}")
		}
		id, err := ops.ValidateChannelID(it.ChannelID)
		if err != nil {
			return nil, within(at, err)
		}
		pw, err := ops.ValidatePassword(it.Password)
		if err != nil {
			return nil, within(at, err)
		}
		if j, dup := seen[id]; dup {
			return nil, apierr.Fieldf(apierr.InvalidChannels, at+".channel_id", "same channel as channels.%d", j)
		}
		seen[id] = i
		v.Channels = append(v.Channels, SyncChannel{ChannelID: id, Password: pw})
	}
	return &v, nil
}

// within prefixes the field named by err's detail with the item path.
func within(at string, err *apierr.Error) *apierr.Error {
	return &apierr.Error{Code: err.Code, Detail: at + "." + err.Detail}
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

// channelType: trimmed, case-insensitive, apns or fcm.
func channelType(s *string) (string, *apierr.Error) {
	if !present(s) {
		return "", apierr.Field(apierr.ChannelTypeRequired, "channel_type")
	}
	t := strings.ToLower(strings.TrimSpace(*s))
	if !ValidChannelType(t) {
		return "", apierr.Field(apierr.InvalidChannelType, "channel_type")
	}
	return t, nil
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
