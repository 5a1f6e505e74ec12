// Package entityselector parses Dynatrace entity selectors (the
// entitySelector of the Events API v2) into a small syntax tree and matches
// its criteria against a view of one Thing. It does no I/O: relationship
// criteria depend on other Things, so the caller, which can read them,
// answers those through a Related function.
//
// The supported subset is type, entityId, entityName (contains, equals,
// startsWith, in, each optionally wrapped in caseSensitive), tag, not, and
// fromRelationship(s).<rel> / toRelationship(s).<rel>. Parse rejects every
// other criterion by name rather than ignoring it.
package entityselector

import (
	"slices"
	"strings"
)

// Limits Parse enforces.
const (
	// MaxLen is the longest selector accepted, in bytes.
	MaxLen = 10_000
	// MaxDepth bounds nesting: each not(...), caseSensitive(...) and
	// relationship inner selector is one level.
	MaxDepth = 10
	// MaxValues bounds the values of one criterion.
	MaxValues = 100
	// MaxRelationshipName bounds a relationship name, in bytes.
	MaxRelationshipName = 100
)

// Selector is a parsed entity selector: a Thing is selected when it
// satisfies every criterion. Parse guarantees that Criteria is non-empty
// and holds at least one TypeIs or EntityIDIn directly (not under Not).
type Selector struct {
	Criteria []Criterion
}

// Thing is the view of a Thing that criteria are matched against.
type Thing struct {
	ID string
	// Type is the Thing's attrs member "type" when it is a JSON string,
	// else "". Criteria never match an empty type: Parse rejects empty
	// values.
	Type  string
	Title string
	Tags  []string
}

// Related answers a relationship criterion for t: whether t holds r. The
// caller resolves r.Inner against the other Things; see Relationship for
// what holding means in each direction.
type Related func(r *Relationship, t *Thing) bool

// Criterion is one condition of a selector. The set of criteria is closed:
// only the types of this package implement it.
type Criterion interface {
	// Match reports whether t satisfies the criterion. related answers
	// relationship criteria; a nil related holds none of them.
	Match(t *Thing, related Related) bool
	// String returns the criterion in canonical selector syntax, every
	// value quoted: parsing it yields an equal criterion.
	String() string
	criterion()
}

// TypeIs is type(X): the Thing's type equals X exactly.
type TypeIs struct{ Type string }

// EntityIDIn is entityId(a, b, ...): the Thing's id is one of IDs.
type EntityIDIn struct{ IDs []string }

// NameOp is the comparison of an entityName criterion.
type NameOp int

const (
	NameContains   NameOp = iota // entityName(x)
	NameEquals                   // entityName.equals(x)
	NameStartsWith               // entityName.startsWith(x)
	NameIn                       // entityName.in(a, b, ...)
)

// NameMatch is an entityName criterion: the Thing's title compared with
// Values by Op (any value for NameIn; exactly one value otherwise).
// Unless CaseSensitive, both sides are compared in their NameKey form.
type NameMatch struct {
	Op            NameOp
	Values        []string
	CaseSensitive bool
}

// TagIn is tag(a, b, ...): one of the Thing's tags equals one of Tags.
type TagIn struct{ Tags []string }

// Not is not(c): the Thing does not satisfy Criterion.
type Not struct{ Criterion Criterion }

// Direction is the side of a relationship a criterion selects.
type Direction int

const (
	// From selects the Things that declare the relationship, pointing at
	// a Thing matched by the inner selector.
	From Direction = iota
	// To selects the Things that a Thing matched by the inner selector
	// points at through the relationship.
	To
)

// Relationship is fromRelationship.<Name>(inner) or
// toRelationship.<Name>(inner). A Thing declares relationships in its attrs
// as "relationships": {"<Name>": "<id>[,<id>...]"}. With From, T holds the
// criterion when T's ids for Name include a Thing matched by Inner; with
// To, when a Thing matched by Inner lists T's id under Name.
type Relationship struct {
	Direction Direction
	Name      string
	Inner     *Selector
}

func (*TypeIs) criterion()       {}
func (*EntityIDIn) criterion()   {}
func (*NameMatch) criterion()    {}
func (*TagIn) criterion()        {}
func (*Not) criterion()          {}
func (*Relationship) criterion() {}

// Match reports whether t satisfies every criterion of s.
func (s *Selector) Match(t *Thing, related Related) bool {
	for _, c := range s.Criteria {
		if !c.Match(t, related) {
			return false
		}
	}
	return true
}

func (c *TypeIs) Match(t *Thing, _ Related) bool { return t.Type == c.Type }

func (c *EntityIDIn) Match(t *Thing, _ Related) bool { return slices.Contains(c.IDs, t.ID) }

func (c *NameMatch) Match(t *Thing, _ Related) bool {
	title := t.Title
	if !c.CaseSensitive {
		title = NameKey(title)
	}
	for _, v := range c.Values {
		if !c.CaseSensitive {
			v = NameKey(v)
		}
		var ok bool
		switch c.Op {
		case NameContains:
			ok = strings.Contains(title, v)
		case NameStartsWith:
			ok = strings.HasPrefix(title, v)
		default: // NameEquals, NameIn
			ok = title == v
		}
		if ok {
			return true
		}
	}
	return false
}

func (c *TagIn) Match(t *Thing, _ Related) bool {
	for _, tag := range t.Tags {
		if slices.Contains(c.Tags, tag) {
			return true
		}
	}
	return false
}

func (c *Not) Match(t *Thing, related Related) bool { return !c.Criterion.Match(t, related) }

func (c *Relationship) Match(t *Thing, related Related) bool {
	return related != nil && related(c, t)
}

// NameKey is the form in which case-insensitive entityName criteria compare
// names. An index of names serving those criteria MUST key them by NameKey:
// it maps rune by rune, so NameKey(a+b) == NameKey(a)+NameKey(b), which
// makes a prefix scan for NameKey(x) find exactly the names starting with x
// case-insensitively.
func NameKey(name string) string { return strings.ToLower(name) }

// TopTypes returns the values of the type(...) criteria at the top level of
// s that are not negated, without duplicates, in selector order. These are
// the types a report about s expects to exist.
func (s *Selector) TopTypes() []string {
	var out []string
	for _, c := range s.Criteria {
		if t, ok := c.(*TypeIs); ok && !slices.Contains(out, t.Type) {
			out = append(out, t.Type)
		}
	}
	return out
}

// Relationships returns the relationship criteria of this level of s, those
// under not(...) included, in selector order; not those nested in their
// inner selectors. An evaluator resolves each before matching Things.
func (s *Selector) Relationships() []*Relationship {
	var out []*Relationship
	for _, c := range s.Criteria {
		for {
			n, ok := c.(*Not)
			if !ok {
				break
			}
			c = n.Criterion
		}
		if r, ok := c.(*Relationship); ok {
			out = append(out, r)
		}
	}
	return out
}

// String returns s in canonical syntax (see Criterion.String).
func (s *Selector) String() string {
	parts := make([]string, len(s.Criteria))
	for i, c := range s.Criteria {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

func (c *TypeIs) String() string     { return "type(" + quote(c.Type) + ")" }
func (c *EntityIDIn) String() string { return "entityId(" + quoteAll(c.IDs) + ")" }
func (c *TagIn) String() string      { return "tag(" + quoteAll(c.Tags) + ")" }
func (c *Not) String() string        { return "not(" + c.Criterion.String() + ")" }

// String returns the criterion name of o, as written in a selector.
func (o NameOp) String() string {
	switch o {
	case NameEquals:
		return "entityName.equals"
	case NameStartsWith:
		return "entityName.startsWith"
	case NameIn:
		return "entityName.in"
	}
	return "entityName"
}

func (c *NameMatch) String() string {
	s := c.Op.String() + "(" + quoteAll(c.Values) + ")"
	if c.CaseSensitive {
		s = "caseSensitive(" + s + ")"
	}
	return s
}

func (c *Relationship) String() string {
	dir := "fromRelationship."
	if c.Direction == To {
		dir = "toRelationship."
	}
	return dir + c.Name + "(" + c.Inner.String() + ")"
}

// quote returns v as a quoted selector value, escaping as Dynatrace does.
func quote(v string) string {
	return `"` + strings.NewReplacer(`~`, `~~`, `"`, `~"`).Replace(v) + `"`
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	return strings.Join(q, ",")
}
