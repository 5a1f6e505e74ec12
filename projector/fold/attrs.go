package fold

import (
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MergePatch applies an attrs patch to cur following JSON Merge Patch
// (RFC 7386) at the depth the contract allows: a null removes the key, an
// object is merged key by key into the current object (or into an empty one
// when the current value is not an object), a scalar replaces. cur is not
// modified; the result is a new map.
func MergePatch(cur Attrs, patch jsontext.Value) (Attrs, error) {
	out := make(Attrs, len(cur))
	for k, v := range cur {
		out[k] = v
	}
	if len(patch) == 0 || patch.Kind() == 'n' {
		return out, nil
	}
	var p map[string]jsontext.Value
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("attrs patch: %w", err)
	}
	for k, v := range p {
		switch v.Kind() {
		case 'n':
			delete(out, k)
		case '{':
			merged, err := mergeObject(out[k], v)
			if err != nil {
				return nil, fmt.Errorf("attrs patch %q: %w", k, err)
			}
			out[k] = merged
		default:
			out[k] = compact(v)
		}
	}
	return out, nil
}

// mergeObject merges a nested patch object into cur.
func mergeObject(cur, patch jsontext.Value) (jsontext.Value, error) {
	base := map[string]jsontext.Value{}
	if len(cur) > 0 && cur.Kind() == '{' {
		if err := json.Unmarshal(cur, &base); err != nil {
			return nil, err
		}
	}
	var p map[string]jsontext.Value
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	for k, v := range p {
		if v.Kind() == 'n' {
			delete(base, k)
			continue
		}
		base[k] = compact(v)
	}
	return json.Marshal(base, encodeOpts)
}

func compact(v jsontext.Value) jsontext.Value {
	c := v.Clone()
	if err := c.Compact(); err != nil {
		return v
	}
	return c
}
