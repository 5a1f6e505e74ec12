package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

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
	// The hashed bytes are needed only here: one pooled buffer holds them
	// (a write's fifth largest allocation of ours before, make bench's
	// -halfallocprofile of 3 December), and the digest is computed in one
	// call without a hasher of its own.
	bp := hashBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledHashBuf {
			hashBufs.Put(bp)
		}
	}()
	b := append((*bp)[:0], bodyHashPrefix...)
	b = append(b, op...)
	b = append(b, 0)
	head := len(b)
	b, err := appendHashViewOrMarshal(b, view)
	if err != nil {
		// Unreachable for validated requests (their JSON values were checked);
		// hash the failure rather than panic so the result stays deterministic.
		b = append(b[:head], "unencodable: "+err.Error()...)
	}
	*bp = b
	// The view is the operation's content as the log will hold it, less
	// the defaults: bounding it here refuses an operation the broker could
	// not store before anything (an alert's claim, another event of the
	// batch) is written, instead of a 503 that every retry meets again.
	if len(b)-head > MaxContentBytes-rl.contentHeadroom {
		return "", apierr.New(apierr.OperationTooLarge)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// bodyHashPrefix begins every hashed body: a version of the hash's input.
const bodyHashPrefix = "pushgo-body-v1\x00"

// hashBufs pools bodyHash's buffers; one grown past maxPooledHashBuf (a
// large integration report) is left to the collector.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledHashBuf = 64 << 10

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
