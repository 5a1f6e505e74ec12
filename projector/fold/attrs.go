package fold

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Attr is one member of an attrs object: its name and its value's JSON
// text, normalised (as the json package writes a raw value: no
// whitespace, strings in their minimal form).
type Attr struct {
	Name  string
	Value jsontext.Value
}

// Attrs is a merged attrs object: scalar values, or objects of scalars
// (one nesting level), sorted by name (byte order), each name once. Its
// JSON is an object. Attrs are never modified in place: MergePatch
// returns a new slice.
type Attrs []Attr

// Get returns the value of member name, or nil.
func (a Attrs) Get(name string) jsontext.Value {
	if i, ok := a.find(name); ok {
		return a[i].Value
	}
	return nil
}

func (a Attrs) find(name string) (int, bool) {
	return slices.BinarySearchFunc(a, name, func(m Attr, n string) int { return cmp.Compare(m.Name, n) })
}

// MarshalJSONTo writes attrs as a JSON object.
func (a Attrs) MarshalJSONTo(enc *jsontext.Encoder) error {
	b, err := a.appendJSON(nil)
	if err != nil {
		return err
	}
	return enc.WriteValue(b)
}

// UnmarshalJSONFrom reads a JSON object (null: none) into attrs, sorted
// and normalised.
func (a *Attrs) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if v.Kind() == 'n' {
		*a = nil
		return nil
	}
	if v.Kind() != '{' {
		return fmt.Errorf("attrs: want an object, got %s", v.Kind())
	}
	var out Attrs
	err = eachMember(v, func(name []byte, val jsontext.Value) error {
		nv, err := normalize(val)
		if err != nil {
			return err
		}
		out = append(out, Attr{Name: string(name), Value: nv})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(out, func(x, y Attr) int { return cmp.Compare(x.Name, y.Name) })
	*a = out
	return nil
}

// MergePatch applies an attrs patch to cur following JSON Merge Patch
// (RFC 7386) at the depth the contract allows: a null removes the key, an
// object is merged key by key into the current object (or into an empty one
// when the current value is not an object), a scalar replaces. cur is not
// modified; the result is new (or cur itself when the patch is empty).
func MergePatch(cur Attrs, patch jsontext.Value) (Attrs, error) {
	if len(patch) == 0 || patch.Kind() == 'n' {
		return cur, nil
	}
	if patch.Kind() != '{' {
		return nil, fmt.Errorf("attrs patch: want an object, got %s", patch.Kind())
	}
	out := slices.Clone(cur)
	err := eachMember(patch, func(rawName []byte, v jsontext.Value) error {
		name := string(rawName)
		i, found := out.find(name)
		switch v.Kind() {
		case 'n':
			if found {
				out = slices.Delete(out, i, i+1)
			}
			return nil
		case '{':
			var base jsontext.Value
			if found {
				base = out[i].Value
			}
			merged, err := mergeObject(base, v)
			if err != nil {
				return fmt.Errorf("attrs patch %q: %w", name, err)
			}
			v = merged
		default:
			nv, err := normalize(v)
			if err != nil {
				return fmt.Errorf("attrs patch %q: %w", name, err)
			}
			v = nv
		}
		if found {
			out[i].Value = v
		} else {
			out = slices.Insert(out, i, Attr{Name: name, Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("attrs patch: %w", err)
	}
	return out, nil
}

// mergeObject merges a nested patch object into cur (a normalised value;
// nil or not an object: an empty one) and returns the normalised result.
func mergeObject(cur, patch jsontext.Value) (jsontext.Value, error) {
	var base Attrs
	if len(cur) > 0 && cur.Kind() == '{' {
		if err := eachMember(cur, func(name []byte, v jsontext.Value) error {
			base = append(base, Attr{Name: string(name), Value: v}) // normalised already
			return nil
		}); err != nil {
			return nil, err
		}
		slices.SortFunc(base, func(x, y Attr) int { return cmp.Compare(x.Name, y.Name) })
	}
	err := eachMember(patch, func(rawName []byte, v jsontext.Value) error {
		name := string(rawName)
		i, found := base.find(name)
		if v.Kind() == 'n' {
			if found {
				base = slices.Delete(base, i, i+1)
			}
			return nil
		}
		nv, err := normalize(v)
		if err != nil {
			return err
		}
		if found {
			base[i].Value = nv
		} else {
			base = slices.Insert(base, i, Attr{Name: name, Value: nv})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return base.appendJSON(nil)
}

// normalize returns a copy of v as the json package writes a raw value
// (jsontext.AppendFormat): what a snapshot keeps, so that writing it out
// is a copy. Plain numbers, literals and strings of printable ASCII are
// already in that form.
func normalize(v jsontext.Value) (jsontext.Value, error) {
	if plain(v) {
		return bytes.Clone(v), nil
	}
	return jsontext.AppendFormat(nil, v)
}

// plain reports whether v, a valid JSON value, is written as it is: a
// literal, a number without exponent, or a string of printable ASCII
// without escapes.
func plain(v jsontext.Value) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == 't' || c == 'f' || c == 'n':
		return true
	case c == '"':
		for _, c := range v[1 : len(v)-1] {
			if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
				return false
			}
		}
		return len(v) >= 2 && v[len(v)-1] == '"'
	case c == '-' || c >= '0' && c <= '9':
		for _, c := range v {
			if !(c >= '0' && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
		return true
	}
	return false
}

// decoders are reused: a jsontext.Decoder is about a kilobyte.
var decoders = sync.Pool{New: func() any { return &sliceDecoder{} }}

// sliceDecoder reads a JSON text held in memory.
type sliceDecoder struct {
	dec jsontext.Decoder
	buf bytes.Buffer
}

func getDecoder(data []byte) *sliceDecoder {
	d := decoders.Get().(*sliceDecoder)
	d.buf = *bytes.NewBuffer(data)
	d.dec.Reset(&d.buf)
	return d
}

func putDecoder(d *sliceDecoder) {
	d.buf = bytes.Buffer{}
	d.dec.Reset(&d.buf)
	decoders.Put(d)
}

// eachMember calls fn with each member of the JSON object obj, in order:
// its name (unescaped) and its value (a subslice of obj, not normalised).
// obj must be exactly one object: duplicate names, invalid UTF-8 and
// trailing data are errors, as for the json package.
func eachMember(obj jsontext.Value, fn func(name []byte, v jsontext.Value) error) error {
	d := getDecoder(obj)
	defer putDecoder(d)
	dec := &d.dec
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return fmt.Errorf("want an object, got %s", tok.Kind())
	}
	// Both the name and the value are read as raw values and taken from
	// obj by their offsets: no copy.
	for dec.PeekKind() != '}' {
		raw, err := dec.ReadValue()
		if err != nil {
			return err
		}
		end := int(dec.InputOffset())
		name, err := unquote(obj[end-len(raw) : end])
		if err != nil {
			return err
		}
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		end = int(dec.InputOffset())
		if err := fn(name, obj[end-len(v):end]); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			return errors.New("data after the object")
		}
		return err
	}
	return nil
}

// unquote returns the string a valid JSON string literal q holds: q's
// inside when it has no escape, else a decoded copy.
func unquote(q []byte) ([]byte, error) {
	if len(q) < 2 || q[0] != '"' {
		return nil, fmt.Errorf("want a string, got %q", q)
	}
	in := q[1 : len(q)-1]
	if bytes.IndexByte(in, '\\') < 0 {
		return in, nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}
