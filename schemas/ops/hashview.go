package ops

import (
	"slices"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/wire"
)

// The body hash is the hash of each write's request view as
// json.Marshal(view, hashOptions) encodes it, and the hashes of operations
// already in the log must not change. Every write pays that encoding, and
// json's reflection was most of a /message's validation (3-4% of its CPU in
// make bench), so the three request views are written here field by field
// instead: the same bytes, without reflection. Tests and fuzzing run with
// verifyHashEncoding on, which compares every encoding with json.Marshal's.

// verifyHashEncoding (tests only) makes encodeHashView panic when its bytes
// differ from json.Marshal's.
var verifyHashEncoding = false

// encodeHashView returns view's JSON exactly as json.Marshal(view,
// hashOptions) does.
func encodeHashView(view any) ([]byte, error) { return appendHashViewOrMarshal(nil, view) }

// appendHashViewOrMarshal appends view's JSON, exactly as json.Marshal(view,
// hashOptions) writes it, to dst: by appendHashView where it can, else by
// json.Marshal.
func appendHashViewOrMarshal(dst []byte, view any) ([]byte, error) {
	head := len(dst)
	b, ok := appendHashView(dst, view)
	if !ok {
		m, err := json.Marshal(view, hashOptions)
		if err != nil {
			return dst, err
		}
		return append(b[:head], m...), nil
	}
	if verifyHashEncoding {
		want, err := json.Marshal(view, hashOptions)
		if err != nil || string(want) != string(b[head:]) {
			panic("ops: hash view encoding differs from json.Marshal:\n got " + string(b[head:]) + "\nwant " + string(want))
		}
	}
	return b, nil
}

// appendHashView appends the JSON of an EventRequest, ThingRequest or
// MessageRequest view; ok is false for any other value, or a JSON value
// that is not valid (canonJSON leaves such a one as it was, and json.Marshal
// decides what it makes of it).
func appendHashView(dst []byte, view any) (_ []byte, ok bool) {
	w := hashWriter{b: dst, ok: true}
	switch v := view.(type) {
	case EventRequest:
		w.grow(len(v.Attrs) + len(v.Metadata) + strLen(v.Title) + strLen(v.Description) + strLen(v.Message))
		w.str('{', "channel_id", v.ChannelID)
		w.str(',', "password", v.Password)
		w.str(',', "op_id", v.OpID)
		w.str(',', "event_id", v.EventID)
		w.str(',', "thing_id", v.ThingID)
		w.str(',', "title", v.Title)
		w.str(',', "description", v.Description)
		w.str(',', "status", v.Status)
		w.str(',', "message", v.Message)
		w.str(',', "severity", v.Severity)
		w.millis("event_time", v.EventTime)
		w.millis("started_at", v.StartedAt)
		w.millis("ended_at", v.EndedAt)
		w.list("tags", v.Tags)
		w.list("images", v.Images)
		w.raw("attrs", v.Attrs)
		w.raw("metadata", v.Metadata)
		w.str(',', "ciphertext", v.Ciphertext)
	case ThingRequest:
		w.grow(len(v.Attrs) + len(v.Metadata) + len(v.ExternalIDs) + strLen(v.Title) + strLen(v.Description))
		w.str('{', "channel_id", v.ChannelID)
		w.str(',', "password", v.Password)
		w.str(',', "op_id", v.OpID)
		w.str(',', "thing_id", v.ThingID)
		w.str(',', "title", v.Title)
		w.str(',', "description", v.Description)
		w.list("tags", v.Tags)
		w.str(',', "primary_image", v.PrimaryImage)
		w.list("images", v.Images)
		w.millis("created_at", v.CreatedAt)
		w.millis("deleted_at", v.DeletedAt)
		w.millis("observed_at", v.ObservedAt)
		w.raw("external_ids", v.ExternalIDs)
		w.str(',', "location_type", v.LocationType)
		w.str(',', "location_value", v.LocationValue)
		w.raw("attrs", v.Attrs)
		w.raw("metadata", v.Metadata)
		w.str(',', "ciphertext", v.Ciphertext)
	case MessageRequest:
		w.grow(len(v.Metadata) + strLen(v.Title) + strLen(v.Body))
		w.str('{', "channel_id", v.ChannelID)
		w.str(',', "password", v.Password)
		w.str(',', "op_id", v.OpID)
		w.str(',', "thing_id", v.ThingID)
		w.str(',', "title", v.Title)
		w.str(',', "body", v.Body)
		w.str(',', "severity", v.Severity)
		w.millis("occurred_at", v.OccurredAt)
		w.str(',', "url", v.URL)
		w.list("images", v.Images)
		w.list("tags", v.Tags)
		w.raw("metadata", v.Metadata)
		w.str(',', "ciphertext", v.Ciphertext)
		w.millis("ttl", v.TTL)
	default:
		return dst, false
	}
	return append(w.b, '}'), w.ok
}

// hashWriter writes the members of a hash view in declaration order.
type hashWriter struct {
	b  []byte
	ok bool
}

// grow makes room for a view's fixed members (member names, ids, times:
// within 512 bytes) and n bytes of its variable ones, so that the buffer
// is allocated once (an Alertmanager alert's attrs grew it twice: a sixth
// of a validation's garbage).
func (w *hashWriter) grow(n int) { w.b = slices.Grow(w.b, 512+n) }

func strLen(p *string) int {
	if p == nil {
		return 0
	}
	return len(*p)
}

// name writes the separator (the object's '{' or ',') and the member name.
func (w *hashWriter) name(sep byte, name string) {
	w.b = append(w.b, sep, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

// quote writes s as json does with invalid UTF-8 allowed: each invalid
// byte becomes U+FFFD, and AppendQuote's report of it is not an error here.
func (w *hashWriter) quote(s string) {
	w.b, _ = jsontext.AppendQuote(w.b, s)
}

func (w *hashWriter) str(sep byte, name string, p *string) {
	w.name(sep, name)
	if p == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.quote(*p)
}

func (w *hashWriter) millis(name string, p *wire.Millis) {
	w.name(',', name)
	if p == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = strconv.AppendInt(w.b, int64(*p), 10)
}

// list writes nil as null (FormatNilSliceAsNull) and an empty list as [].
func (w *hashWriter) list(name string, l []string) {
	w.name(',', name)
	if l == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, s := range l {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.quote(s)
	}
	w.b = append(w.b, ']')
}

// raw writes a JSON value as it is; absent is null. The value MUST be
// canonJSON's answer, as the hash views' constructors make it: canonical
// bytes, which json.Marshal writes unchanged (it reformats any other), or
// on a value that could not be canonicalized the value itself, which is
// not valid JSON and leaves the encoding to json.Marshal.
func (w *hashWriter) raw(name string, v jsontext.Value) {
	w.name(',', name)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	if !v.IsValid() {
		w.ok = false
		return
	}
	w.b = append(w.b, v...)
}
