package entityselector

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a selector Parse rejects: Message says what is wrong and names
// the criterion concerned; Offset is the byte offset in the selector where
// the problem was found.
type Error struct {
	Message string
	Offset  int
}

func (e *Error) Error() string {
	return fmt.Sprintf("entitySelector: %s (at offset %d)", e.Message, e.Offset)
}

// supported lists the criteria in the message rejecting any other one.
const supported = "type, entityId, entityName, entityName.equals, entityName.startsWith, entityName.in, " +
	"caseSensitive, tag, not, fromRelationship(s).<rel>, toRelationship(s).<rel>"

// needsAnchor is the message for a selector level without a positive
// type(...) or entityId(...); Dynatrace requires one at every level.
const needsAnchor = "entitySelector needs type(...) or entityId(...)"

// Parse parses an entity selector. Criterion names are case-sensitive, as
// in Dynatrace; whitespace around tokens is ignored. A value is either
// quoted, "...", in which ~" is a quote and ~~ a tilde, or unquoted,
// trimmed and free of , ( ) and ". Values are non-empty and hold no
// control characters. Every selector level, the top one and each
// relationship's inner selector, must hold type(...) or entityId(...)
// outside not(...).
func Parse(s string) (*Selector, *Error) {
	if len(s) > MaxLen {
		return nil, &Error{Message: fmt.Sprintf("entitySelector is longer than %d bytes", MaxLen), Offset: MaxLen}
	}
	if !utf8.ValidString(s) {
		off := 0
		for off < len(s) {
			r, n := utf8.DecodeRuneInString(s[off:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			off += n
		}
		return nil, &Error{Message: "entitySelector is not valid UTF-8", Offset: off}
	}
	p := &parser{s: s}
	sel, err := p.selector(0, "")
	if err != nil {
		return nil, err
	}
	if !p.eof() { // selector stops only at the end or at a ")"
		return nil, p.errf(p.pos, `unexpected ")" with no criterion to close`)
	}
	return sel, nil
}

type parser struct {
	s   string
	pos int
}

func (p *parser) eof() bool  { return p.pos >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.pos] }

// found quotes the character at the current position, for messages.
func (p *parser) found() string {
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return strconv.QuoteRune(r)
}

func (p *parser) skipSpace() {
	for !p.eof() && isSpace(p.peek()) {
		p.pos++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *parser) errf(off int, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Offset: off}
}

// selector parses comma-separated criteria up to the end of the input or
// an unmatched ")", which it leaves unread. within names the relationship
// whose inner selector this is ("" at the top level), for messages.
func (p *parser) selector(depth int, within string) (*Selector, *Error) {
	start := p.pos
	prefix := ""
	if within != "" {
		prefix = within + "(...): "
	}
	sel := &Selector{}
	for {
		p.skipSpace()
		if p.eof() || p.peek() == ')' {
			if len(sel.Criteria) == 0 {
				return nil, p.errf(p.pos, "%sentitySelector is empty", prefix)
			}
			return nil, p.errf(p.pos, `%sexpected a criterion after ","`, prefix)
		}
		c, err := p.criterion(depth)
		if err != nil {
			return nil, err
		}
		sel.Criteria = append(sel.Criteria, c)
		p.skipSpace()
		if p.eof() || p.peek() == ')' {
			break
		}
		if p.peek() != ',' {
			return nil, p.errf(p.pos, `%sexpected "," or ")" after %s, found %s`, prefix, nameOf(c), p.found())
		}
		p.pos++
	}
	for _, c := range sel.Criteria {
		switch c.(type) {
		case *TypeIs, *EntityIDIn:
			return sel, nil
		}
	}
	return nil, p.errf(start, "%s%s", prefix, needsAnchor)
}

// criterion parses one criterion, name(...), at the current position.
func (p *parser) criterion(depth int) (Criterion, *Error) {
	p.skipSpace()
	start := p.pos
	for !p.eof() && !strings.ContainsRune(`(),"`, rune(p.peek())) && !isSpace(p.peek()) {
		p.pos++
	}
	name := p.s[start:p.pos]
	if name == "" {
		return nil, p.errf(start, "expected a criterion such as type(...), found %s", p.found())
	}
	rel, err := p.classify(name, start)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.eof() || p.peek() != '(' {
		return nil, p.errf(p.pos, `criterion %q needs "(" after its name`, name)
	}
	open := p.pos
	p.pos++
	if rel != nil || name == "not" || name == "caseSensitive" {
		if depth+1 > MaxDepth {
			return nil, p.errf(start, "%s(...) nests deeper than %d levels", name, MaxDepth)
		}
	}
	switch {
	case rel != nil:
		inner, err := p.selector(depth+1, name)
		if err != nil {
			return nil, err
		}
		if err := p.close(name, open); err != nil {
			return nil, err
		}
		rel.Inner = inner
		return rel, nil
	case name == "not" || name == "caseSensitive":
		inner, err := p.criterion(depth + 1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if !p.eof() && p.peek() == ',' {
			return nil, p.errf(p.pos, "%s(...) takes exactly one criterion", name)
		}
		if err := p.close(name, open); err != nil {
			return nil, err
		}
		if name == "not" {
			return &Not{Criterion: inner}, nil
		}
		nm, ok := inner.(*NameMatch)
		if !ok {
			return nil, p.errf(open+1, "caseSensitive(...) applies only to entityName criteria, not to %s", nameOf(inner))
		}
		nm.CaseSensitive = true
		return nm, nil
	}
	vals, err := p.values(name, open)
	if err != nil {
		return nil, err
	}
	switch name {
	case "entityId":
		return &EntityIDIn{IDs: vals}, nil
	case "tag":
		return &TagIn{Tags: vals}, nil
	case "entityName.in":
		return &NameMatch{Op: NameIn, Values: vals}, nil
	}
	if len(vals) != 1 {
		return nil, p.errf(start, "%s(...) takes exactly one value, got %d", name, len(vals))
	}
	switch name {
	case "type":
		return &TypeIs{Type: vals[0]}, nil
	case "entityName.equals":
		return &NameMatch{Op: NameEquals, Values: vals}, nil
	case "entityName.startsWith":
		return &NameMatch{Op: NameStartsWith, Values: vals}, nil
	}
	return &NameMatch{Op: NameContains, Values: vals}, nil // entityName, the one name classify leaves
}

// classify rejects unsupported criterion names, and returns the (not yet
// filled) Relationship when name is one.
func (p *parser) classify(name string, off int) (*Relationship, *Error) {
	switch name {
	case "type", "entityId", "entityName", "entityName.equals", "entityName.startsWith", "entityName.in",
		"caseSensitive", "tag", "not":
		return nil, nil
	}
	for _, d := range []struct {
		prefix string
		dir    Direction
	}{{"fromRelationship", From}, {"fromRelationships", From}, {"toRelationship", To}, {"toRelationships", To}} {
		rel, ok := strings.CutPrefix(name, d.prefix+".")
		if !ok {
			if name != d.prefix {
				continue
			}
			rel = ""
		}
		if !ValidRelationshipName(rel) {
			return nil, p.errf(off, "%s needs a relationship name of 1-%d characters [A-Za-z0-9_-], as in %s.isInstanceOf(...); got %q",
				d.prefix, MaxRelationshipName, d.prefix, clip(rel))
		}
		return &Relationship{Direction: d.dir, Name: rel}, nil
	}
	return nil, p.errf(off, "criterion %q is not supported; supported: %s", clip(name), supported)
}

// ValidRelationshipName reports whether s can name a relationship in a
// selector: 1 to MaxRelationshipName characters of [A-Za-z0-9_-]. Other
// names in a Thing's relationships attr can never be selected.
func ValidRelationshipName(s string) bool {
	if len(s) == 0 || len(s) > MaxRelationshipName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// close consumes the ")" of the criterion name whose "(" is at open.
func (p *parser) close(name string, open int) *Error {
	p.skipSpace()
	if p.eof() {
		return p.errf(open, `%s( is missing its ")"`, name)
	}
	if p.peek() != ')' {
		return p.errf(p.pos, `%s(...): expected ")", found %s`, name, p.found())
	}
	p.pos++
	return nil
}

// values parses the value list of name, after the "(" at open, through
// its ")".
func (p *parser) values(name string, open int) ([]string, *Error) {
	var vals []string
	for {
		p.skipSpace()
		at := p.pos
		v, err := p.value(name)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, p.errf(at, "%s(...): value %d is empty", name, len(vals)+1)
		}
		if len(vals) == MaxValues {
			return nil, p.errf(at, "%s(...) takes at most %d values", name, MaxValues)
		}
		vals = append(vals, v)
		p.skipSpace()
		if p.eof() {
			return nil, p.errf(open, `%s( is missing its ")"`, name)
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return vals, nil
		default:
			return nil, p.errf(p.pos, `%s(...): expected "," or ")" after value %d, found %s`, name, len(vals), p.found())
		}
	}
}

// value parses one value of name, quoted or not, stopping before the
// "," or ")" that ends it.
func (p *parser) value(name string) (string, *Error) {
	start := p.pos
	if !p.eof() && p.peek() == '"' {
		p.pos++
		var b strings.Builder
		for {
			if p.eof() {
				return "", p.errf(start, "%s(...): quoted value is missing its closing quote", name)
			}
			c := p.peek()
			switch {
			case c == '"':
				p.pos++
				return b.String(), nil
			case c == '~':
				if p.pos+1 >= len(p.s) || (p.s[p.pos+1] != '"' && p.s[p.pos+1] != '~') {
					return "", p.errf(p.pos, `%s(...): "~" in a quoted value must be followed by '"' or "~" (write ~~ for a tilde)`, name)
				}
				b.WriteByte(p.s[p.pos+1])
				p.pos += 2
			case c < 0x20 || c == 0x7f:
				return "", p.errf(p.pos, "%s(...): value holds control character %q", name, c)
			default:
				b.WriteByte(c)
				p.pos++
			}
		}
	}
	for !p.eof() && p.peek() != ',' && p.peek() != ')' {
		c := p.peek()
		switch {
		case c == '(' || c == '"':
			return "", p.errf(p.pos, "%s(...): an unquoted value may not contain %q; quote the value", name, c)
		case (c < 0x20 || c == 0x7f) && !isSpace(c):
			return "", p.errf(p.pos, "%s(...): value holds control character %q", name, c)
		}
		p.pos++
	}
	v := strings.TrimRight(p.s[start:p.pos], " \t\n\r")
	if strings.ContainsAny(v, "\t\n\r") {
		return "", p.errf(start, "%s(...): value holds a control character", name)
	}
	return v, nil
}

// nameOf names c's criterion for messages.
func nameOf(c Criterion) string {
	switch c := c.(type) {
	case *TypeIs:
		return "type(...)"
	case *EntityIDIn:
		return "entityId(...)"
	case *TagIn:
		return "tag(...)"
	case *Not:
		return "not(...)"
	case *NameMatch:
		if c.CaseSensitive {
			return "caseSensitive(...)"
		}
		return c.Op.String() + "(...)"
	case *Relationship:
		if c.Direction == To {
			return "toRelationship." + c.Name + "(...)"
		}
		return "fromRelationship." + c.Name + "(...)"
	}
	return "criterion"
}

// clip shortens a name echoed in a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
