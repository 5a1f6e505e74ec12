package fold

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
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
	_, err = scanObject(v, 0, 1, func(name []byte, vs, ve int) error {
		nv, err := normalize(v[vs:ve])
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
// when the current value is not an object), a scalar replaces; a member
// that would take the result past MaxAttrsBytes is left out and marked.
// cur is not modified; the result is new (or cur itself when the patch is
// empty).
func MergePatch(cur Attrs, patch jsontext.Value) (Attrs, error) {
	out, _, err := mergePatch(checkAll, cur, 0, patch)
	return out, err
}

// mergePatch is MergePatch through walk (eachValidMember for a patch
// checked already). It merges in one pass, in the patch's order; a patch
// that meets MaxAttrsBytes is merged again by mergeAtBound, whose result
// does not depend on the order of its members (RFC 7386 gives them none).
// counted is what cur counts towards the bound plus one, 0 when not
// known (a snapshot decoded); so is the count it returns of the result:
// a snapshot folded again and again in the fold's cache is not counted
// member by member at each operation.
func mergePatch(walk walker, cur Attrs, counted int, patch jsontext.Value) (Attrs, int, error) {
	if len(patch) == 0 || patch.Kind() == 'n' {
		return cur, counted, nil
	}
	out := slices.Clone(cur)
	size := counted - 1
	if counted <= 0 {
		size = out.size()
	}
	grew := false // a member took more room than it had
	err := walk.each(patch, func(name []byte, vs, ve int) error {
		v := patch[vs:ve]
		i, found := out.findBytes(name)
		if v[0] == 'n' { // a member's value starts at its first byte (not Kind: 13% of a merge)
			if found {
				size -= out[i].size()
				out = slices.Delete(out, i, i+1)
			}
			return nil
		}
		merged, delta, err := out.merged(walk, i, found, name, v)
		if err != nil {
			return err
		}
		size, grew = size+delta, grew || delta > 0
		out = out.put(i, found, name, merged)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("attrs patch: %w", err)
	}
	// Only the result counts, not the sizes on the way (which depend on
	// the members' order): a result within the bound stands, and so does
	// one past it that no member grew (attrs stored past the bound before
	// there was one, shrinking).
	if size > boundOf(out) && grew {
		out, err := mergeAtBound(walk, cur, patch)
		return out, 0, err
	}
	return out, size + 1, nil
}

// merged is the value a patch's member name: v (not null) leaves in a,
// whose member i is name's when found, and the room it takes beyond what
// the member took before.
func (a Attrs) merged(walk walker, i int, found bool, name []byte, v jsontext.Value) (jsontext.Value, int, error) {
	var base jsontext.Value
	if found {
		base = a[i].Value
	}
	v, err := mergeValue(walk, name, base, v)
	if err != nil {
		return nil, 0, err
	}
	delta := memberSize(name, v)
	if found {
		delta -= a[i].size()
	}
	return v, delta, nil
}

// put is a with member name's value v: in place of member i when found,
// else inserted at i (a.findBytes' place).
func (a Attrs) put(i int, found bool, name []byte, v jsontext.Value) Attrs {
	if found {
		a[i].Value = v
		return a
	}
	return slices.Insert(a, i, Attr{Name: string(name), Value: v})
}

// mergeValue is the value member name of a patch (v, not null) leaves in
// attrs whose current value is base (nil: none).
func mergeValue(walk walker, name []byte, base, v jsontext.Value) (jsontext.Value, error) {
	var err error
	if v[0] == '{' {
		v, err = mergeObject(walk, base, v)
	} else {
		v, err = normalize(v)
	}
	if err != nil {
		return nil, fmt.Errorf("attrs patch %q: %w", name, err)
	}
	return v, nil
}

// mergeAtBound merges a patch whose result would be past MaxAttrsBytes
// with a member that grew: first every removal (a member's null, and the
// nulls inside a nested object's patch, which apply even when the rest of
// that object cannot), then every member that takes no more room than it
// had, then the others in name order, each left out when it would take
// the attrs past their bound (boundOf: room is kept for the mark,
// ops.TruncatedAttr, which the attrs get when one was left out). So which
// members are kept depends on the patch's content, not its order, a patch
// that frees as much as it adds still fits, and the mark stays within
// MaxAttrsBytes.
func mergeAtBound(walk walker, cur Attrs, patch jsontext.Value) (Attrs, error) {
	type member struct {
		name []byte
		v    jsontext.Value
	}
	var members []member
	if err := walk.each(patch, func(name []byte, vs, ve int) error {
		members = append(members, member{name, patch[vs:ve]})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("attrs patch: %w", err)
	}
	out := slices.Clone(cur)
	for _, m := range members {
		i, found := out.findBytes(m.name)
		switch {
		case !found:
		case m.v[0] == 'n':
			out = slices.Delete(out, i, i+1)
		case m.v[0] == '{':
			if nulls := nestedRemovals(walk, m.v); nulls != nil && len(out[i].Value) > 0 && out[i].Value[0] == '{' {
				v, err := mergeObject(walk, out[i].Value, nulls)
				if err != nil {
					return nil, fmt.Errorf("attrs patch %q: %w", m.name, err)
				}
				out[i].Value = v
			}
		}
	}
	// What takes no more room than it had, then what grows, in name
	// order, while it fits. (A member's merged value depends only on its
	// own current value, which no other member of the patch changes.)
	type growing struct {
		name  []byte
		v     jsontext.Value
		delta int
	}
	var grows []growing
	size := out.size()
	for _, m := range members {
		if m.v[0] == 'n' {
			continue
		}
		i, found := out.findBytes(m.name)
		v, delta, err := out.merged(walk, i, found, m.name, m.v)
		if err != nil {
			return nil, err
		}
		if delta > 0 {
			grows = append(grows, growing{m.name, v, delta})
			continue
		}
		size += delta
		out = out.put(i, found, m.name, v)
	}
	slices.SortFunc(grows, func(a, b growing) int { return bytes.Compare(a.name, b.name) })
	limit, cut := boundOf(out), false
	for _, g := range grows {
		if size+g.delta > limit {
			cut = true
			continue
		}
		size += g.delta
		i, found := out.findBytes(g.name)
		out = out.put(i, found, g.name, g.v)
	}
	if cut {
		out = out.marked()
	}
	return out, nil
}

// boundOf is what attrs a may take: MaxAttrsBytes, less the room of the
// mark (ops.TruncatedAttr) unless a has it, so that the mark, when a later
// patch meets the bound, always fits within it.
func boundOf(a Attrs) int {
	if _, marked := a.find(ops.TruncatedAttr); marked {
		return MaxAttrsBytes
	}
	return MaxAttrsBytes - markSize
}

// markSize is what the mark (ops.TruncatedAttr: true) counts.
var markSize = memberSize(ops.TruncatedAttr, jsontext.Value("true"))

// nestedRemovals is the object of the null members of a nested patch
// object v ({"a":null,...}), nil when it has none.
func nestedRemovals(walk walker, v jsontext.Value) jsontext.Value {
	var out jsontext.Value
	_ = walk.each(v, func(name []byte, vs, ve int) error {
		if v[vs] != 'n' {
			return nil
		}
		if out == nil {
			out = jsontext.Value{'{'}
		} else {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, name)
		out = append(out, ":null"...)
		return nil
	})
	if out == nil {
		return nil
	}
	return append(out, '}')
}

// marked is a with ops.TruncatedAttr set to true; a is not modified (it
// may be a snapshot's: MergePatch returns cur itself for an empty patch).
func (a Attrs) marked() Attrs {
	i, found := a.find(ops.TruncatedAttr)
	switch {
	case found && string(a[i].Value) == "true":
		return a
	case found:
		a = slices.Clone(a)
		a[i].Value = jsontext.Value("true")
		return a
	}
	return slices.Insert(slices.Clip(a), i, Attr{Name: ops.TruncatedAttr, Value: jsontext.Value("true")})
}

// MaxAttrsBytes bounds an entity's merged attrs, counted as memberSize
// does (their encoded size). Every patch is within the request's body
// limit, but nothing else bounds what many patches add up to: an entity
// whose attrs only ever grew (a sender naming a member after a timestamp)
// would cost every later operation of it, every read and every cached
// snapshot more, for the whole fold. A patch that meets the bound is
// merged by mergeAtBound: a member that would take the attrs past it is
// left out and TruncatedAttr is set to true, as the integrations mark what
// they cut; the rest of the operation applies. The bound is part of the
// fold, not a setting: a rebuild must come to the same snapshot on every
// replica.
const MaxAttrsBytes = 256 << 10

// memberSize is what a member counts towards MaxAttrsBytes: its name as
// JSON writes it (quoted, escaped: a control character is six bytes) and
// its value (normalised JSON), a colon and a comma.
func memberSize[Name ~string | ~[]byte](name Name, v jsontext.Value) int {
	return quotedLen(name) + len(v) + 2
}

// quotedLen is the length of name as JSON writes it (jsontext.AppendQuote).
func quotedLen[Name ~string | ~[]byte](name Name) int {
	for i := range len(name) {
		if c := name[i]; c < 0x20 || c == '\\' || c == '"' || c >= 0x7f {
			q, _ := jsontext.AppendQuote(nil, name)
			return len(q)
		}
	}
	return len(name) + 2
}

// size is what m counts towards MaxAttrsBytes.
func (m Attr) size() int { return memberSize(m.Name, m.Value) }

// size is what a counts towards MaxAttrsBytes.
func (a Attrs) size() int {
	n := 0
	for _, m := range a {
		n += m.size()
	}
	return n
}

// findBytes is find with the name as bytes (no string made of it).
func (a Attrs) findBytes(name []byte) (int, bool) {
	return slices.BinarySearchFunc(a, name, func(m Attr, n []byte) int { return compareStringBytes(m.Name, n) })
}

// compareStringBytes is strings.Compare(s, string(b)).
func compareStringBytes(s string, b []byte) int {
	for i := range min(len(s), len(b)) {
		if s[i] != b[i] {
			if s[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return cmp.Compare(len(s), len(b))
}

// mergeObject merges a nested patch object into cur (a normalised value;
// nil or not an object: an empty one) and returns the normalised result.
func mergeObject(walk walker, cur, patch jsontext.Value) (jsontext.Value, error) {
	// Nested objects are small: their members fit here without a heap
	// allocation (base does not escape: the closures below do not).
	var room [8]member
	base := room[:0]
	if len(cur) > 0 && cur[0] == '{' { // normalised: no space before it
		// A snapshot's value: checked when it was merged in.
		if err := eachValidMember(cur, func(name []byte, vs, ve int) error {
			base = append(base, member{name: name, value: cur[vs:ve:ve]}) // normalised already
			return nil
		}); err != nil {
			return nil, err
		}
		// A value this function wrote is sorted already; one a create
		// stored as it came (normalize) may not be.
		cmpName := func(x, y member) int { return bytes.Compare(x.name, y.name) }
		if !slices.IsSortedFunc(base, cmpName) {
			slices.SortFunc(base, cmpName)
		}
	}
	err := walk.each(patch, func(name []byte, vs, ve int) error {
		v := patch[vs:ve]
		i, found := slices.BinarySearchFunc(base, name, func(m member, n []byte) int { return bytes.Compare(m.name, n) })
		if v[0] == 'n' {
			if found {
				base = slices.Delete(base, i, i+1)
			}
			return nil
		}
		// Copied into the result below: a plain value needs no copy of
		// its own.
		nv := v
		if !plain(v) {
			var err error
			if nv, err = jsontext.AppendFormat(nil, v); err != nil {
				return err
			}
		}
		if found {
			base[i].value = nv
		} else {
			base = slices.Insert(base, i, member{name: name, value: nv})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := 2
	for _, m := range base {
		n += len(m.name) + len(m.value) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range base {
		if i > 0 {
			out = append(out, ',')
		}
		if plainName(m.name) {
			out = append(append(append(out, '"'), m.name...), '"')
		} else if out, err = jsontext.AppendQuote(out, m.name); err != nil {
			return nil, err
		}
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}'), nil
}

// plainName reports whether name (unescaped) is written in JSON as it is,
// between quotes: printable ASCII without a quote or a backslash, as
// jsontext.AppendQuote writes it.
func plainName(name []byte) bool {
	for _, c := range name {
		if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// member is a member of a nested attrs object being merged: its name
// (unescaped) and normalised value.
type member struct {
	name, value []byte
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
