package ops

import (
	"bytes"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

// The JSON-valued fields (attrs, metadata, external_ids) arrive as raw
// jsontext.Value. wire.Decode has already checked their syntax, but the
// validators re-read them with a strict decoder so that a request built by
// hand (or by MessageRequestFromQuery) can never get malformed JSON through.

// absentJSON reports whether a JSON-valued field counts as not sent:
// missing, or an explicit null.
func absentJSON(v jsontext.Value) bool {
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}

// decodeObject reads v as exactly one JSON object, calling member for each
// member name with d positioned at its value; member must consume the value.
// Malformed input, a non-object or trailing data yields invalid.
func decodeObject(v jsontext.Value, invalid *apierr.Error, member func(d *jsontext.Decoder, name string) *apierr.Error) *apierr.Error {
	od := objectDecoders.Get().(*objectDecoder)
	defer od.release()
	// From a bytes.Buffer the decoder reads v in place, where a reader's
	// bytes would be copied into a buffer of its own first.
	d := &od.d
	d.Reset(bytes.NewBuffer(v))
	if err := readObject(d, invalid, func(name string) *apierr.Error { return member(d, name) }); err != nil {
		return err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return invalid
	}
	return nil
}

// objectDecoder is a strict decoder decodeObject reuses: a new one
// allocated its state and its duplicate-name sets for every attrs,
// metadata and external_ids validated (an Alertmanager alert's attrs are
// validated twice), about a third of a validation's garbage.
type objectDecoder struct {
	d     jsontext.Decoder
	empty bytes.Buffer // what a pooled decoder reads: it keeps no request's bytes
}

var objectDecoders = sync.Pool{New: func() any { return new(objectDecoder) }}

// release returns od to the pool, reading nothing.
func (od *objectDecoder) release() {
	od.d.Reset(&od.empty)
	objectDecoders.Put(od)
}

// readObject reads one object at d's position; see decodeObject.
func readObject(d *jsontext.Decoder, invalid *apierr.Error, member func(name string) *apierr.Error) *apierr.Error {
	if d.PeekKind() != '{' {
		return invalid
	}
	if _, err := d.ReadToken(); err != nil {
		return invalid
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return invalid
		}
		if err := member(tok.String()); err != nil {
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return invalid
	}
	return nil
}
