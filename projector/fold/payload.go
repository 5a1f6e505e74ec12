package fold

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// Decoding the log without reflection. The json package spends most of an
// operation's fold in reflection; these decoders read the same members
// with the same rules (names matched exactly, unknown members skipped,
// duplicate names, invalid UTF-8 and values of the wrong type rejected, a
// null leaves a member at its zero value), one token at a time. A test
// compares them with json.Unmarshal on random and fuzzed input.

// DecodeEnvelope decodes one entry of PUSHGO_OPS. The payload is a
// subslice of data (not copied).
func DecodeEnvelope(data []byte, env *ops.Envelope) error {
	*env = ops.Envelope{}
	return decodeObject(checkAll, data, func(name []byte, d fieldDecoder) error {
		switch string(name) {
		case "v":
			var v int64
			if err := d.int(&v); err != nil {
				return err
			}
			if int64(int(v)) != v {
				return errors.New("v out of range")
			}
			env.V = int(v)
		case "op":
			var s string
			if err := d.string(&s); err != nil {
				return err
			}
			env.Op = ops.Name(s)
		case "channel_id":
			return d.string(&env.ChannelID)
		case "op_id":
			return d.string(&env.OpID)
		case "entity_id":
			return d.string(&env.EntityID)
		case "accepted_at":
			return d.int(&env.AcceptedAt)
		case "body_hash":
			return d.string(&env.BodyHash)
		case "payload":
			return d.raw(&env.Payload)
		default:
			return d.skip()
		}
		return nil
	})
}

// decodeEventPayload decodes an event operation's payload, read as walk
// says.
func decodeEventPayload(walk walker, data []byte, p *ops.EventPayload) error {
	return decodeObject(walk, data, func(name []byte, d fieldDecoder) error {
		switch string(name) {
		case "event_id":
			return d.string(&p.EventID)
		case "thing_id":
			return d.string(&p.ThingID)
		case "title":
			return d.string(&p.Title)
		case "description":
			return d.string(&p.Description)
		case "status":
			return d.string(&p.Status)
		case "message":
			return d.string(&p.Message)
		case "severity":
			return d.string(&p.Severity)
		case "event_time":
			return d.int(&p.EventTime)
		case "started_at":
			return d.optInt(&p.StartedAt)
		case "ended_at":
			return d.optInt(&p.EndedAt)
		case "tags":
			return d.list(&p.Tags)
		case "images":
			return d.list(&p.Images)
		case "attrs":
			return d.raw(&p.Attrs)
		case "metadata":
			return d.raw(&p.Metadata)
		case "ciphertext":
			return d.string(&p.Ciphertext)
		case "deadline":
			return d.optInt(&p.Deadline)
		case "refresh":
			return d.bool(&p.Refresh)
		default:
			return d.skip()
		}
	})
}

// decodeThingPayload decodes a thing operation's payload, read as walk
// says.
func decodeThingPayload(walk walker, data []byte, p *ops.ThingPayload) error {
	return decodeObject(walk, data, func(name []byte, d fieldDecoder) error {
		switch string(name) {
		case "thing_id":
			return d.string(&p.ThingID)
		case "title":
			return d.string(&p.Title)
		case "description":
			return d.string(&p.Description)
		case "tags":
			return d.list(&p.Tags)
		case "primary_image":
			return d.string(&p.PrimaryImage)
		case "images":
			return d.list(&p.Images)
		case "observed_at":
			return d.int(&p.ObservedAt)
		case "created_at":
			return d.optInt(&p.CreatedAt)
		case "deleted_at":
			return d.optInt(&p.DeletedAt)
		case "external_ids":
			return d.externalIDs(&p.ExternalIDs)
		case "location_type":
			return d.string(&p.LocationType)
		case "location_value":
			return d.string(&p.LocationValue)
		case "attrs":
			return d.raw(&p.Attrs)
		case "metadata":
			return d.raw(&p.Metadata)
		case "ciphertext":
			return d.string(&p.Ciphertext)
		default:
			return d.skip()
		}
	})
}

// fieldDecoder hands a member's value (checked already) to a decoder.
type fieldDecoder struct {
	v jsontext.Value
}

// decodeObject reads data, exactly one JSON object (or null: no member),
// as walk says, calling field for each member with its name (unescaped)
// and its value.
func decodeObject(walk walker, data []byte, field func(name []byte, d fieldDecoder) error) error {
	return walk.each(data, func(name []byte, vs, ve int) error {
		if err := field(name, fieldDecoder{v: jsontext.Value(data[vs:ve:ve])}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

func (d fieldDecoder) skip() error { return nil }

func (d fieldDecoder) raw(dst *jsontext.Value) error {
	*dst = d.v
	return nil
}

func wrongType(v jsontext.Value, want string) error {
	return fmt.Errorf("cannot unmarshal JSON %s into %s", kindName(v[0]), want)
}

// kindName names the kind of JSON value that starts with c.
func kindName(c byte) string {
	switch c {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	}
	if c == '-' || c >= '0' && c <= '9' {
		return "number"
	}
	return "value"
}

func (d fieldDecoder) string(dst *string) error {
	v := d.v
	switch v[0] {
	case 'n':
		return nil
	case '"':
		*dst = string(stringValue(v, bytes.IndexByte(v, '\\') >= 0))
		return nil
	}
	return wrongType(v, "string")
}

func (d fieldDecoder) int(dst *int64) error {
	v := d.v
	switch c := v[0]; {
	case c == 'n':
		return nil
	case c == '-' || c >= '0' && c <= '9':
		n, ok := parseInt(v)
		if !ok {
			return fmt.Errorf("cannot unmarshal JSON number %s into int64", v)
		}
		*dst = n
		return nil
	}
	return wrongType(v, "int64")
}

func (d fieldDecoder) optInt(dst **int64) error {
	if d.v[0] == 'n' {
		*dst = nil
		return nil
	}
	var n int64
	if err := d.int(&n); err != nil {
		return err
	}
	*dst = &n
	return nil
}

func (d fieldDecoder) bool(dst *bool) error {
	switch d.v[0] {
	case 'n':
		return nil
	case 't', 'f':
		*dst = d.v[0] == 't'
		return nil
	}
	return wrongType(d.v, "bool")
}

// list reads an array of strings (a null element is ""); null is nil, []
// an empty list.
func (d fieldDecoder) list(dst *[]string) error {
	v := d.v
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '[':
	default:
		return wrongType(v, "[]string")
	}
	out := []string{}
	_, err := scanArray(v, 0, 1, func(vs, ve int) error {
		e := v[vs:ve]
		switch e[0] {
		case 'n':
			out = append(out, "")
		case '"':
			out = append(out, string(stringValue(e, bytes.IndexByte(e, '\\') >= 0)))
		default:
			return wrongType(e, "string")
		}
		return nil
	})
	if err == nil {
		*dst = out
	}
	return err
}

// externalIDs reads an object of strings or nulls; null is nil.
func (d fieldDecoder) externalIDs(dst *map[string]*string) error {
	v := d.v
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '{':
	default:
		return wrongType(v, "map[string]*string")
	}
	out := map[string]*string{}
	_, err := scanObject(v, 0, 1, func(name []byte, vs, ve int) error {
		e := v[vs:ve]
		switch e[0] {
		case 'n':
			out[string(name)] = nil
		case '"':
			str := string(stringValue(e, bytes.IndexByte(e, '\\') >= 0))
			out[string(name)] = &str
		default:
			return wrongType(e, "*string")
		}
		return nil
	})
	if err == nil {
		*dst = out
	}
	return err
}

// parseInt parses a valid JSON number that is an integer within int64.
func parseInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true // -(1<<63) wraps to itself: math.MinInt64
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}
