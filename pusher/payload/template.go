package payload

import (
	"bytes"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// Template is one operation's APNs notification, built and encoded once,
// from which each device's is cut by writing its key (in delivery_id and
// provider_device_key) and the send time into the encoded body: what Build
// does per device costs a map, two JSON encodings and most of a push's CPU
// at 10,000 devices per operation.
//
// Only the delivery_id, provider_device_key and sent_at keys differ
// between two devices of one operation and provider (the device's platform
// chooses the APNs topic, not the body). A template is not used for FCM
// (its SDK encodes the data map itself), for a push near the size limit (a
// device key could tip it into a wake-up) or one already oversized: For
// reports false and the caller builds per device.
type Template struct {
	n      Notification
	seq    uint64
	body   []byte
	idAt   int // offset of the marker in body (inside delivery_id's value)
	keyAt  int // offset of the marker in body (provider_device_key's value)
	sentAt int // offset of sent_at's digits in body
	// full is the full map encoded (InboxItem's payload), cut the same
	// way at fullIDAt and fullSentAt.
	full                 []byte
	fullIDAt, fullSentAt int
	usable               bool
}

// templateKey stands for the device key while the template is built; it is
// no device key (those are hex), so it occurs in delivery_id and
// provider_device_key only (once in the inbox's copy, which has no
// provider_device_key).
const templateKey = "~pushgo-template-device~"

// templateSlack is the room a template keeps below MaxPayloadBytes for
// the longest device key it is cut for.
const templateSlack = 128

// NewTemplate builds env's notification for provider as of now. It
// returns Build's errors (ErrExpired, a payload that does not decode).
func NewTemplate(env ops.Envelope, seq uint64, provider Provider, now time.Time, opts ...Option) (*Template, error) {
	n, err := Build(env, seq, templateKey, provider, "", now, opts...)
	if err != nil {
		return nil, err
	}
	t := &Template{n: n, seq: seq}
	if provider != APNs || n.Oversized || len(n.APNsBody)+templateSlack > MaxPayloadBytes {
		return t, nil
	}
	// The encoding sorts the keys: delivery_id, provider_device_key, then
	// sent_at.
	sent := []byte(`"sent_at":"` + n.Data["sent_at"] + `"`)
	t.idAt = bytes.Index(n.APNsBody, []byte(`"delivery_id":"`+n.DeliveryID+`"`))
	t.keyAt = bytes.Index(n.APNsBody, []byte(`"provider_device_key":"`+templateKey+`"`))
	t.sentAt = bytes.Index(n.APNsBody, sent)
	if t.idAt < 0 || t.keyAt < t.idAt || t.sentAt < t.keyAt || bytes.Count(n.APNsBody, []byte(templateKey)) != 2 || len(n.Data["sent_at"]) != 13 {
		return t, nil
	}
	t.idAt += len(`"delivery_id":"`) + len(n.DeliveryID) - len(templateKey)
	t.keyAt += len(`"provider_device_key":"`)
	t.sentAt += len(`"sent_at":"`)
	full, err := json.Marshal(n.Full, json.Deterministic(true))
	if err != nil {
		return t, nil
	}
	t.fullIDAt = bytes.Index(full, []byte(`"delivery_id":"`+n.DeliveryID+`"`))
	t.fullSentAt = bytes.Index(full, sent)
	if t.fullIDAt < 0 || t.fullSentAt < t.fullIDAt || bytes.Count(full, []byte(templateKey)) != 1 {
		return t, nil
	}
	t.fullIDAt += len(`"delivery_id":"`) + len(n.DeliveryID) - len(templateKey)
	t.fullSentAt += len(`"sent_at":"`)
	t.body, t.full, t.usable = n.APNsBody, full, true
	return t, nil
}

// For is the notification of the device deviceKey, with its token and
// platform, sent at now. Its APNsBody is the whole push and its Data and
// Full are nil. ok is false when the template cannot be cut (see
// Template): then call Build. err is ErrExpired once the message's ttl is
// not after now.
func (t *Template) For(deviceKey, token, platform string, now time.Time) (n Notification, ok bool, err error) {
	if !t.usable || len(deviceKey) > templateSlack/2 || !plainKey(deviceKey) {
		return Notification{}, false, nil
	}
	if !t.n.Expiration.IsZero() && !t.n.Expiration.After(now) {
		return Notification{}, true, ErrExpired
	}
	sentAt := strconv.FormatInt(now.UnixMilli(), 10)
	if len(sentAt) != 13 {
		return Notification{}, false, nil
	}
	n = t.n
	n.DeliveryID = DeliveryID(t.seq, deviceKey)
	n.Token, n.Platform = token, platform
	n.APNsBody = splice(t.body, []int{t.idAt, t.keyAt}, t.sentAt, deviceKey, sentAt)
	n.fullJSON = splice(t.full, []int{t.fullIDAt}, t.fullSentAt, deviceKey, sentAt)
	// APNsBody is the whole push, and fullJSON the inbox's copy; a copy of
	// the map per device would be the largest allocation of a send, for
	// nobody (the APNs sender reads the body).
	n.Data, n.Full = nil, nil
	return n, true, nil
}

// splice is enc with the device key written at each offset of keysAt
// (over templateKey; in increasing order) and the send time at sentAt,
// after them all: sent_at sorts after delivery_id and provider_device_key
// in the deterministic encoding.
func splice(enc []byte, keysAt []int, sentAt int, deviceKey, sent string) []byte {
	out := make([]byte, 0, len(enc)+len(keysAt)*(len(deviceKey)-len(templateKey)))
	from := 0
	for _, at := range keysAt {
		out = append(out, enc[from:at]...)
		out = append(out, deviceKey...)
		from = at + len(templateKey)
	}
	out = append(out, enc[from:sentAt]...)
	out = append(out, sent...)
	return append(out, enc[sentAt+len(sent):]...)
}

// InboxItem is n's item for the device's inbox (/v2/messages/pull, the
// legacy /messages/pull): delivery.InboxItem, its payload the full map.
func InboxItem(n Notification) ([]byte, error) {
	full := n.fullJSON
	if full == nil {
		var err error
		if full, err = json.Marshal(n.Full, json.Deterministic(true)); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(full)+len(n.DeliveryID)+32)
	out = append(out, `{"delivery_id":`...)
	out, err := jsontext.AppendQuote(out, n.DeliveryID)
	if err != nil {
		return nil, err
	}
	out = append(out, `,"payload":`...)
	out = append(out, full...)
	return append(out, '}'), nil
}

// plainKey reports whether k needs no JSON escaping: the gateway's device
// keys always pass; anything else is built per device.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == ':' || c == '.') {
			return false
		}
	}
	return k != ""
}
