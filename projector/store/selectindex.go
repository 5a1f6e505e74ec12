package store

import (
	"bytes"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/entityselector"
	entityids "github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// Attrs members the selector indexes are derived from.
const (
	typeAttr          = "type"
	relationshipsAttr = "relationships"
)

// putSelectorIndex moves a thing's Y, N and L entries (see keys.go) from
// what prev holds to what next holds, writing only the difference. It
// reports whether they are the same (sameSelectorIndex), for
// sameSelection.
func (b *Batch) putSelectorIndex(prev, next *fold.Thing) (same bool) {
	if prev != nil && sameSelectorIndex(prev, next) {
		return true
	}
	old, cur := selectorIndexKeys(prev), selectorIndexKeys(next)
	for _, k := range old {
		if _, ok := slices.BinarySearch(cur, k); !ok {
			_ = b.del([]byte(k))
		}
	}
	for _, k := range cur {
		if _, ok := slices.BinarySearch(old, k); !ok {
			_ = b.set([]byte(k), nil)
		}
	}
	return false
}

// sameSelectorIndex reports whether a and b have the same selector index
// entries because nothing they are derived from differs; most operations
// change neither type, title nor relationships.
func sameSelectorIndex(a, b *fold.Thing) bool {
	return (a.State == ops.ThingDeleted) == (b.State == ops.ThingDeleted) && a.Title == b.Title &&
		bytes.Equal(a.Attrs.Get(typeAttr), b.Attrs.Get(typeAttr)) &&
		bytes.Equal(a.Attrs.Get(relationshipsAttr), b.Attrs.Get(relationshipsAttr))
}

// sameSelection reports whether a selector sees a and b alike: whether a
// and b have the same selector index entries (sameIndex, as
// putSelectorIndex found), the same state (only active Things are
// selected) and the same tags. It must cover every field view and
// thingRelationships read, or the selection cache (selectcache.go) would
// answer from before a change a selector sees.
func sameSelection(a, b *fold.Thing, sameIndex bool) bool {
	return sameIndex && a.State == b.State && slices.Equal(a.Tags, b.Tags)
}

// selectorIndexKeys returns the sorted selector index keys of t (none for
// nil or a deleted thing).
func selectorIndexKeys(t *fold.Thing) []string {
	if t == nil || t.State == ops.ThingDeleted {
		return nil
	}
	var out []string
	if typ := thingType(t); indexable(typ) {
		out = append(out, string(typeKey(t.ChannelID, typ, t.ThingID)))
		if t.Title != "" {
			out = append(out, string(nameKey(t.ChannelID, typ, entityselector.NameKey(t.Title), t.ThingID)))
		}
	}
	for rel, targets := range thingRelationships(t) {
		for _, target := range targets {
			out = append(out, string(relKey(t.ChannelID, rel, target, t.ThingID)))
		}
	}
	slices.Sort(out)
	return out
}

// indexable reports whether typ can be a key component that a type(...)
// criterion can look up: selector values are never empty and hold no
// control characters.
func indexable(typ string) bool { return typ != "" && !strings.ContainsRune(typ, sep) }

// thingType is t's attrs.type when it is a JSON string, else "".
func thingType(t *fold.Thing) string {
	v := t.Attrs.Get(typeAttr)
	if len(v) == 0 || v.Kind() != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// thingRelationships decodes t's attrs.relationships: an object mapping a
// relationship name to a string of comma-separated thing ids. Members with
// a name no selector can spell, values that are not strings, and ids that
// are not valid entity ids are ignored, not errors: attrs are the sender's
// and a malformed declaration only means nothing is related through it.
func thingRelationships(t *fold.Thing) map[string][]string {
	v := t.Attrs.Get(relationshipsAttr)
	if len(v) == 0 || v.Kind() != '{' {
		return nil
	}
	var decl map[string]any
	if json.Unmarshal(v, &decl) != nil {
		return nil
	}
	out := map[string][]string{}
	for rel, val := range decl {
		s, ok := val.(string)
		if !ok || !entityselector.ValidRelationshipName(rel) {
			continue
		}
		var targets []string
		for id := range strings.SplitSeq(s, ",") {
			if id = strings.TrimSpace(id); entityids.ValidEntityID(id) {
				targets = append(targets, id)
			}
		}
		if len(targets) > 0 {
			slices.Sort(targets)
			out[rel] = slices.Compact(targets)
		}
	}
	return out
}
