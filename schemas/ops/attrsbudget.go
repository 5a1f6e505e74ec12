package ops

import "github.com/go-json-experiment/json/jsontext"

// AttrsBudget is what an integration's attrs may still take, counted as
// encoded (a member's quoted name, its JSON value, a colon and a comma).
// Every integration cuts a report's attrs to a budget rather than refuse
// the report, and sets TruncatedAttr when it left a member out; this is
// the one way they count. The zero value has nothing left.
type AttrsBudget struct {
	left int
	cut  bool
}

// NewAttrsBudget returns a budget of n bytes.
func NewAttrsBudget(n int) AttrsBudget { return AttrsBudget{left: n} }

// Take reports whether the member name: value (value as JSON) fits in what
// is left, and takes its size if so. A member that does not fit is to be
// left out, and Cut reports true from then on; a later, smaller member may
// still fit.
func (b *AttrsBudget) Take(name string, value []byte) bool {
	q, err := jsontext.AppendQuote(nil, name)
	n := len(q) + len(value) + 2
	if err != nil || n > b.left {
		b.cut = true
		return false
	}
	b.left -= n
	return true
}

// TakeString is Take for a string value; it returns the value quoted (nil
// when it does not fit).
func (b *AttrsBudget) TakeString(name, value string) []byte {
	q, err := jsontext.AppendQuote(nil, value)
	if err != nil || !b.Take(name, q) {
		b.cut = true
		return nil
	}
	return q
}

// Cut reports whether a member was left out.
func (b *AttrsBudget) Cut() bool { return b.cut }
