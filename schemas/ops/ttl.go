package ops

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"
)

// MessageTTL returns the ttl (ms) of a message payload as the log holds
// it (MessagePayload's JSON), ok false when it has none or cannot be read.
// Only the payload's own members are looked at: a "ttl" inside metadata is
// not the message's.
func MessageTTL(payload []byte) (ttl int64, ok bool) {
	if !bytes.Contains(payload, []byte(`"ttl":`)) {
		return 0, false // most messages: no decoding
	}
	v, ok := topMember(payload, "ttl")
	if !ok || v.Kind() != '0' {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false // never in the log: ttl is a whole number of ms
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// EnvelopeMessageTTL is MessageTTL of the payload of an operation as the
// log holds it (Envelope's JSON), ok false when it is not a message or has
// no ttl.
func EnvelopeMessageTTL(envelope []byte) (ttl int64, ok bool) {
	if !bytes.Contains(envelope, []byte(`"ttl":`)) {
		return 0, false // nearly every operation: no decoding
	}
	p, ok := topMember(envelope, "payload")
	if !ok {
		return 0, false
	}
	return MessageTTL(p)
}

// topMember returns the value of the top-level member name of the JSON object
// obj.
func topMember(obj []byte, name string) (jsontext.Value, bool) {
	d := jsontext.NewDecoder(bytes.NewReader(obj))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	for d.PeekKind() == '"' {
		tok, err := d.ReadToken()
		if err != nil {
			return nil, false
		}
		if tok.String() != name {
			if err := d.SkipValue(); err != nil {
				return nil, false
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return nil, false
		}
		return v, true
	}
	return nil, false
}
