package ops

import (
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// metadata validates the metadata object (spec §1; values up to
// rl.metadataValueMax bytes) and returns it rebuilt
// with trimmed keys and trimmed string values, compact, in the order sent.
func metadata(v jsontext.Value, rl rules) (jsontext.Value, *apierr.Error) {
	if absentJSON(v) {
		return nil, nil
	}
	invalid := apierr.Field(apierr.MetadataInvalid, "metadata")
	out := jsontext.Value{'{'}
	seen := map[string]bool{}
	err := decodeObject(v, invalid, func(d *jsontext.Decoder, rawKey string) *apierr.Error {
		key := strings.TrimSpace(rawKey)
		field := "metadata." + key
		switch {
		case key == "":
			return apierr.Fieldf(apierr.MetadataKeyInvalid, "metadata", "empty key")
		case len(key) > maxMetadataKeyB:
			return apierr.Field(apierr.MetadataKeyTooLong, field)
		case seen[key]:
			return apierr.Fieldf(apierr.MetadataKeyInvalid, field, "duplicate key after trimming")
		}
		seen[key] = true
		val, err := metadataValue(d, field, invalid, rl.metadataValueMax)
		if err != nil {
			return err
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, key) // key came from valid JSON, so it is valid UTF-8
		out = append(out, ':')
		out = append(out, val...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// metadataValue consumes one value and returns its normalised JSON text.
func metadataValue(d *jsontext.Decoder, field string, invalid *apierr.Error, max int) ([]byte, *apierr.Error) {
	switch d.PeekKind() {
	case '"':
		tok, err := d.ReadToken()
		if err != nil {
			return nil, invalid
		}
		s := strings.TrimSpace(tok.String())
		if s == "" {
			return nil, apierr.Field(apierr.MetadataValueInvalid, field)
		}
		if len(s) > max {
			return nil, tooLong(field, max)
		}
		q, err := jsontext.AppendQuote(nil, s)
		if err != nil {
			return nil, invalid
		}
		return q, nil
	case '0', 't', 'f':
		val, err := d.ReadValue()
		if err != nil {
			return nil, invalid
		}
		// Numbers and booleans are measured by their JSON text.
		if len(val) > max {
			return nil, tooLong(field, max)
		}
		if val.Kind() == '0' && !wire.FitsFloat64(val) {
			return nil, apierr.Fieldf(apierr.InvalidJSONData, field, "%s", wire.OutOfRangeReason)
		}
		return val.Clone(), nil
	case 'n', '{', '[':
		return nil, apierr.Field(apierr.MetadataValueScalarRequired, field)
	}
	return nil, invalid
}

// tooLong names the limit in force, which the configuration may have
// raised above the catalog's 512 bytes.
func tooLong(field string, max int) *apierr.Error {
	return apierr.Fieldf(apierr.MetadataValueTooLong, field, "metadata values must be at most %d bytes", max)
}
