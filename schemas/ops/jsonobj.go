package ops

import (
	"bytes"
	"io"

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
	d := jsontext.NewDecoder(bytes.NewReader(v))
	if err := readObject(d, invalid, func(name string) *apierr.Error { return member(d, name) }); err != nil {
		return err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return invalid
	}
	return nil
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
