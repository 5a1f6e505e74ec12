package ops

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

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
// same body on another route never counts as the same operation.
func bodyHash(op Name, view any) string {
	b, err := json.Marshal(view, hashOptions)
	if err != nil {
		// Unreachable for validated requests (their JSON values were checked);
		// hash the failure rather than panic so the result stays deterministic.
		b = []byte("unencodable: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte("pushgo-body-v1\x00"))
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
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
