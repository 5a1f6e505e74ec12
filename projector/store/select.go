package store

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
)

// Selection is the answer of SelectThings.
type Selection struct {
	// ThingIDs are the selected Things in id order, at most limit. With
	// TooMany they are limit of the matches, not necessarily the lowest
	// ids.
	ThingIDs []string
	// UnknownTypes are the top-level type(...) values that no Thing of the
	// channel has (archived Things count; deleted ones do not).
	UnknownTypes []string
	// TooMany is set when more than limit Things matched.
	TooMany bool
	Stats   SelectStats
	// Cached is set when Select answered from its cache (Stats are zero:
	// the answer read nothing).
	Cached bool
}

// SelectStats measures the work of one selection, so tests can check that
// the indexes, not a scan of the channel, drive it.
type SelectStats struct {
	// SnapshotsRead counts Thing snapshots read, at every selector level.
	SnapshotsRead int
	// IndexEntries counts index keys visited.
	IndexEntries int
}

// Select is SelectThings for the selector text selector, parsed here (an
// invalid one: an error that is a *entityselector.Error), answered from
// the selection cache when no commit changed what it sees of the
// channel's Things since it was last evaluated. The answer's slices may be
// shared with the cache: the caller must not modify them.
func (s *Store) Select(channelID, selector string, limit int) (Selection, error) {
	if res, ok := s.selections.get(channelID, selector, limit); ok {
		return res, nil
	}
	sel, perr := entityselector.Parse(selector)
	if perr != nil {
		return Selection{}, perr
	}
	stamp := s.selections.stamp() // before SelectThings takes its snapshot
	res, err := s.SelectThings(channelID, sel, limit)
	if err != nil {
		return Selection{}, err
	}
	cached := res
	cached.Stats, cached.Cached = SelectStats{}, true
	s.selections.put(channelID, selector, limit, cached, stamp)
	return res, nil
}

// SelectThings evaluates sel over the Things of a channel. Only active
// Things are selected, at every level (Dynatrace selects recently seen
// entities only). limit > 0 bounds the selection: evaluation stops at the
// (limit+1)th match and reports TooMany; limit <= 0 selects every match.
//
// Each selector level is driven by one criterion, read through an index,
// and its candidates are checked against every criterion on their
// snapshots, so no selection reads every Thing of the channel unless a
// bare type(...) covers them: entityId reads the listed snapshots; a type
// with an entityName equals, in or startsWith scans the name index; a
// fromRelationship scans the relationship index for the Things its inner
// selector matched; a toRelationship reads their declarations; a type
// alone scans the type index. Every relationship's inner selector is
// evaluated in full first. Everything is read from one Pebble snapshot, so
// a concurrent commit is seen entirely or not at all.
func (s *Store) SelectThings(channelID string, sel *entityselector.Selector, limit int) (Selection, error) {
	// One snapshot, so the selection sees one point in time: its point
	// reads (Get, which stops at the first level holding the key) and one
	// iterator over it, made at the first index scan, that every scan
	// repositions, instead of an iterator built per scan.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	ev := &evaluator{snap: snap, channelID: channelID}
	defer ev.close()
	out := Selection{ThingIDs: []string{}}
	things, tooMany, err := ev.level(sel, limit)
	if err != nil {
		return Selection{}, fmt.Errorf("select things of %s: %w", channelID, err)
	}
	if len(things) == 0 {
		// Every top-level type(...) is a matched Thing's type when
		// something matched; only an empty selection asks whether a type
		// is unknown.
		for _, typ := range sel.TopTypes() {
			ok, err := ev.any(typeKey(channelID, typ, ""))
			if err != nil {
				return Selection{}, fmt.Errorf("select things of %s: type %q: %w", channelID, typ, err)
			}
			if !ok {
				out.UnknownTypes = append(out.UnknownTypes, typ)
			}
		}
	}
	for _, t := range things {
		out.ThingIDs = append(out.ThingIDs, t.ThingID)
	}
	out.TooMany, out.Stats = tooMany, ev.stats
	return out, nil
}

// evaluator evaluates one selection against one Pebble snapshot.
type evaluator struct {
	snap *pebble.Snapshot
	// scans visits index keys (nil before the first scan); a scan's visit
	// may read a Thing through snap while the scan goes on.
	scans     *pebble.Iterator
	channelID string
	stats     SelectStats
}

// relation is a relationship criterion resolved for one evaluation of its
// level: the ids of the Things its inner selector matched and, for To,
// the ids those Things point at through it.
type relation struct {
	inner   map[string]bool
	targets map[string]bool // To only
}

// level returns the active Things matching sel, in id order; with
// limit > 0 at most limit of them, tooMany telling whether more matched.
func (e *evaluator) level(sel *entityselector.Selector, limit int) (things []*fold.Thing, tooMany bool, err error) {
	rels := map[*entityselector.Relationship]*relation{}
	for _, r := range sel.Relationships() {
		if rels[r], err = e.resolve(r); err != nil {
			return nil, false, err
		}
	}
	// A From criterion is answered from the declaration of the candidate
	// being matched, cur, with no index read.
	var (
		cur     *fold.Thing
		curRels map[string][]string // cur's, decoded on first need
		decoded bool
	)
	related := func(r *entityselector.Relationship, t *entityselector.Thing) bool {
		rel := rels[r]
		if r.Direction == entityselector.To {
			return rel.targets[t.ID]
		}
		if !decoded {
			curRels, decoded = thingRelationships(cur), true
		}
		return slices.ContainsFunc(curRels[r.Name], func(id string) bool { return rel.inner[id] })
	}
	seen := map[string]bool{}
	err = e.candidates(sel, rels, func(id string) (bool, error) {
		if seen[id] {
			return true, nil
		}
		seen[id] = true
		t, err := e.thing(id)
		if err != nil || t == nil || t.State != ops.ThingActive {
			return err == nil, err
		}
		if cur, decoded = t, false; !sel.Match(view(t), related) {
			return true, nil
		}
		things = append(things, t)
		return limit <= 0 || len(things) <= limit, nil
	})
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(things, func(a, b *fold.Thing) int { return cmp.Compare(a.ThingID, b.ThingID) })
	if limit > 0 && len(things) > limit {
		return things[:limit], true, nil
	}
	return things, false, nil
}

// resolve evaluates r's inner selector in full.
func (e *evaluator) resolve(r *entityselector.Relationship) (*relation, error) {
	inner, _, err := e.level(r.Inner, 0)
	if err != nil {
		return nil, fmt.Errorf("relationship %s: %w", r.Name, err)
	}
	rel := &relation{inner: make(map[string]bool, len(inner))}
	if r.Direction == entityselector.To {
		rel.targets = map[string]bool{}
	}
	for _, t := range inner {
		rel.inner[t.ThingID] = true
		if r.Direction == entityselector.To {
			for _, id := range thingRelationships(t)[r.Name] {
				rel.targets[id] = true
			}
		}
	}
	return rel, nil
}

// candidates calls visit with the ids of a superset of the Things matching
// sel, read through the index of its most selective criterion, until visit
// returns false; it may visit an id more than once. Parse guarantees a
// positive type or entityId at every level, so there is always an index
// to use. Preference: entityId (direct reads), type with an entityName
// equals, in or startsWith (the name index), a relationship (the Things
// it relates), type alone (the type index).
func (e *evaluator) candidates(sel *entityselector.Selector, rels map[*entityselector.Relationship]*relation, visit func(id string) (bool, error)) error {
	var (
		idList []string
		typ    *entityselector.TypeIs
		name   *entityselector.NameMatch
		rel    *entityselector.Relationship
		size   int // of rel: Things it relates (To) or inner Things (From)
	)
	for _, c := range sel.Criteria {
		switch c := c.(type) {
		case *entityselector.EntityIDIn:
			if idList == nil || len(c.IDs) < len(idList) {
				idList = c.IDs
			}
		case *entityselector.TypeIs:
			if typ == nil {
				typ = c
			}
		case *entityselector.NameMatch:
			// contains cannot use an index ordered by name; a
			// case-sensitive criterion can, as its matches are a subset
			// of the case-insensitive one's. Whole names beat prefixes.
			if c.Op != entityselector.NameContains && (name == nil || c.Op != entityselector.NameStartsWith) {
				name = c
			}
		case *entityselector.Relationship:
			n := len(rels[c].inner)
			if c.Direction == entityselector.To {
				n = len(rels[c].targets)
			}
			if rel == nil || n < size {
				rel, size = c, n
			}
		}
	}
	switch {
	case idList != nil:
		return visitIDs(idList, visit)
	case rel != nil && size == 0:
		return nil // nothing is related: nothing to read
	case typ != nil && name != nil:
		var prefixes []string
		for _, v := range name.Values {
			p := nameKey(e.channelID, typ.Type, entityselector.NameKey(v), "")
			if name.Op == entityselector.NameStartsWith {
				p = p[:len(p)-1] // a prefix of the name, not the whole name
			}
			if !slices.Contains(prefixes, string(p)) {
				prefixes = append(prefixes, string(p))
			}
		}
		return e.scanAll(prefixes, visit)
	case rel != nil && rel.Direction == entityselector.To:
		return visitIDs(slices.Collect(maps.Keys(rels[rel].targets)), visit)
	case rel != nil:
		var prefixes []string
		for id := range rels[rel].inner {
			prefixes = append(prefixes, string(relKey(e.channelID, rel.Name, id, "")))
		}
		slices.Sort(prefixes)
		return e.scanAll(prefixes, visit)
	case typ != nil:
		return e.scan(typeKey(e.channelID, typ.Type, ""), visit)
	}
	return errors.New("selector level has neither type(...) nor entityId(...)")
}

// scanAll scans each prefix in turn (see scan) until visit returns false.
func (e *evaluator) scanAll(prefixes []string, visit func(id string) (bool, error)) error {
	for _, p := range prefixes {
		stopped := false
		err := e.scan([]byte(p), func(id string) (bool, error) {
			more, err := visit(id)
			stopped = !more
			return more, err
		})
		if err != nil || stopped {
			return err
		}
	}
	return nil
}

// visitIDs visits ids in order, each once.
func visitIDs(ids []string, visit func(id string) (bool, error)) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if more, err := visit(id); err != nil || !more {
			return err
		}
	}
	return nil
}

// close closes the scans' iterator.
func (e *evaluator) close() {
	if e.scans != nil {
		_ = e.scans.Close()
	}
}

// scan visits the id ending each key that starts with prefix, in key
// order, until visit returns false.
func (e *evaluator) scan(prefix []byte, visit func(id string) (bool, error)) error {
	if e.scans == nil {
		it, err := e.snap.NewIter(nil)
		if err != nil {
			return err
		}
		e.scans = it
	}
	it := e.scans
	it.SetBounds(prefix, prefixEnd(prefix))
	for ok := it.First(); ok; ok = it.Next() {
		e.stats.IndexEntries++
		if more, err := visit(lastPart(it.Key())); err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// any reports whether some key starts with prefix.
func (e *evaluator) any(prefix []byte) (bool, error) {
	found := false
	err := e.scan(prefix, func(string) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// thing reads the snapshot of a thing, or nil.
func (e *evaluator) thing(id string) (*fold.Thing, error) {
	e.stats.SnapshotsRead++
	v, closer, err := e.snap.Get(snapshotKey(ops.KindThing, e.channelID, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read thing %s: %w", id, err)
	}
	defer closer.Close()
	t, err := fold.DecodeThing(v)
	if err != nil {
		return nil, fmt.Errorf("decode thing %s: %w", id, err)
	}
	return t, nil
}

// view is what criteria see of t.
func view(t *fold.Thing) *entityselector.Thing {
	return &entityselector.Thing{ID: t.ThingID, Type: thingType(t), Title: t.Title, Tags: t.Tags}
}
