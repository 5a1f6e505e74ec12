package ops

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

// MaxContentBytes bounds an operation's content (its request as the body
// hash encodes it): 512 KiB, half the broker's 1 MiB message limit, which
// leaves the envelope, its defaults and the headers room. A PushGo route's
// 32 KiB body never reaches it; an integration's 1 MiB report can.
const MaxContentBytes = 512 << 10

// hashOptions make the encoding a function of the request's meaning:
// struct fields in declaration order, and nil lists (absent) kept distinct
// from empty ones (clear), which json v2 would otherwise both write as [].
var hashOptions = json.JoinOptions(
	json.Deterministic(true),
	json.FormatNilSliceAsNull(true),
	jsontext.AllowInvalidUTF8(true),
)

// bodyHash is the hex SHA-256 of op and view, the request as the client
// meant it (see Validated.BodyHash). The op is part of the hash so that the
// same body on another route never counts as the same operation. A view
// over MaxContentBytes is operation_too_large.
func bodyHash(op Name, view any, rl rules) (string, *apierr.Error) {
	b, err := encodeHashView(view)
	if err != nil {
		// Unreachable for validated requests (their JSON values were checked);
		// hash the failure rather than panic so the result stays deterministic.
		b = []byte("unencodable: " + err.Error())
	}
	// The view is the operation's content as the log will hold it, less
	// the defaults: bounding it here refuses an operation the broker could
	// not store before anything (an alert's claim, another event of the
	// batch) is written, instead of a 503 that every retry meets again.
	if len(b) > MaxContentBytes-rl.contentHeadroom {
		return "", apierr.New(apierr.OperationTooLarge)
	}
	h := sha256.New()
	h.Write([]byte("pushgo-body-v1\x00"))
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// canonJSON returns v in RFC 8785 form (key order and whitespace do not
// count), with integers kept as written so that ids above 2^53 stay
// distinct. null, like absence, is nil.
func canonJSON(v jsontext.Value) jsontext.Value {
	if absentJSON(v) {
		return nil
	}
	c := v.Clone()
	if c.Canonicalize(jsontext.CanonicalizeRawInts(false)) != nil {
		return v
	}
	return c
}

// The hash views are copies of the request with the credentials and op_id
// removed and every field in its decoded, canonical form.

func eventHashView(r *EventRequest, channelID string) EventRequest {
	v := *r
	v.ChannelID, v.Password, v.OpID = &channelID, nil, nil
	v.Attrs, v.Metadata = canonJSON(r.Attrs), canonJSON(r.Metadata)
	return v
}

func thingHashView(r *ThingRequest, channelID string) ThingRequest {
	v := *r
	v.ChannelID, v.Password, v.OpID = &channelID, nil, nil
	v.ExternalIDs, v.Attrs, v.Metadata = canonJSON(r.ExternalIDs), canonJSON(r.Attrs), canonJSON(r.Metadata)
	return v
}

func messageHashView(r *MessageRequest, channelID string) MessageRequest {
	v := *r
	v.ChannelID, v.Password, v.OpID = &channelID, nil, nil
	v.Metadata = canonJSON(r.Metadata)
	return v
}
