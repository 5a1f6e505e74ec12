package ops

import (
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

const (
	maxExternalIDKeyB   = 64
	maxExternalIDValueB = 256
)

// externalIDs validates the external_ids patch of a thing (spec §5). Keys
// are lower-cased so that "GitHub" and "github" name the same system; two
// keys that collide that way are ambiguous and rejected. A null value
// removes the key, so it is kept as a nil entry.
func externalIDs(v jsontext.Value) (map[string]*string, *apierr.Error) {
	if absentJSON(v) {
		return nil, nil
	}
	invalid := apierr.Fieldf(apierr.ExternalIDsValueInvalid, "external_ids", "must be a JSON object")
	out := map[string]*string{}
	err := decodeObject(v, invalid, func(d *jsontext.Decoder, rawKey string) *apierr.Error {
		if !validExternalIDKey(rawKey) {
			return apierr.Field(apierr.ExternalIDsKeyInvalid, "external_ids."+rawKey)
		}
		key := strings.ToLower(rawKey)
		field := "external_ids." + key
		if _, dup := out[key]; dup {
			return apierr.Fieldf(apierr.ExternalIDsKeyInvalid, field, "duplicate key after lower-casing")
		}
		switch d.PeekKind() {
		case 'n':
			if d.SkipValue() != nil {
				return invalid
			}
			out[key] = nil
			return nil
		case '"':
			tok, err := d.ReadToken()
			if err != nil {
				return invalid
			}
			s := strings.TrimSpace(tok.String())
			if s == "" || len(s) > maxExternalIDValueB {
				return apierr.Field(apierr.ExternalIDsValueInvalid, field)
			}
			out[key] = &s
			return nil
		}
		return apierr.Field(apierr.ExternalIDsValueInvalid, field)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validExternalIDKey: 1-64 bytes of [A-Za-z0-9_:.-].
func validExternalIDKey(k string) bool {
	if len(k) == 0 || len(k) > maxExternalIDKeyB {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == ':', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
