package ops

import (
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// TruncatedAttr is the attrs key an integration sets to true when it left
// members of a report out to stay within its attrs budget (every
// integration cuts rather than refuses). The name is the gateway's: a
// member of a report spelled so is left out.
const TruncatedAttr = "pushgo.attrs_truncated"

// attrs validates an attrs patch (spec §1): an object whose values are
// scalars, null, or an object of scalars and nulls, each number within a
// float64's range (wire.NumberOutOfRange: the projector and every reader
// hold attrs numbers as float64). The patch is kept as sent
// (key order included), only compacted: merging it is the projector's job.
func attrs(v jsontext.Value) (jsontext.Value, *apierr.Error) {
	if absentJSON(v) {
		return nil, nil
	}
	invalid := apierr.Field(apierr.AttrsInvalid, "attrs")
	err := decodeObject(v, invalid, func(d *jsontext.Decoder, key string) *apierr.Error {
		if strings.TrimSpace(key) == "" {
			// PushGo's ExtensionObjectRef::validate: a blank key is no
			// attribute anyone can show or update.
			return apierr.Field(apierr.ExtensionObjectKeyRequired, "attrs")
		}
		return attrValue(d, "attrs", key, invalid, true)
	})
	if err != nil {
		return nil, err
	}
	out := v.Clone()
	if out.Compact() != nil {
		return nil, invalid
	}
	return out, nil
}

// attrValue checks and consumes the value of member key of the object at
// parent; nestOK says whether an object is still allowed at this depth.
// The member's field name (parent.key) is built only for an error: most
// values have none, and attrs have a dozen members.
func attrValue(d *jsontext.Decoder, parent, key string, invalid *apierr.Error, nestOK bool) *apierr.Error {
	switch d.PeekKind() {
	case '[':
		return apierr.Field(apierr.ExtensionObjectArraysUnsupported, parent+"."+key)
	case '{':
		if !nestOK {
			return apierr.Field(apierr.ExtensionObjectNestedObjectUnsupported, parent+"."+key)
		}
		field := parent + "." + key
		return readObject(d, invalid, func(key string) *apierr.Error {
			return attrValue(d, field, key, invalid, false)
		})
	case '0':
		num, err := d.ReadValue()
		if err != nil {
			return invalid
		}
		if !wire.FitsFloat64(num) {
			return apierr.Fieldf(apierr.InvalidJSONData, parent+"."+key, "%s", wire.OutOfRangeReason)
		}
		return nil
	}
	if d.SkipValue() != nil {
		return invalid
	}
	return nil
}
