package fold

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON scanner for the fold's inputs, written for speed: the log holds
// JSON the fold reads once per operation, and a general decoder spends
// most of a fold in it. It checks what the json package checks by default
// (RFC 8259 syntax, valid UTF-8 and escapes, no duplicate names in any
// object, nesting within maxDepth) and hands out values as subslices of
// the input, without copying. The decoders and the merge are built on it;
// tests and fuzz targets compare them with json.Unmarshal.

// maxDepth is the json package's nesting limit.
const maxDepth = 10000

// syntaxError is a JSON text that is not valid.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.off, e.msg)
}

func errAt(off int, format string, args ...any) error {
	return &syntaxError{off: off, msg: fmt.Sprintf(format, args...)}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue checks the value at b[i:] (no leading space) and returns where
// it ends.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, errAt(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		return scanObject(b, i, depth+1, nil)
	case c == '[':
		return scanArray(b, i, depth+1, nil)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	default:
		return i, errAt(i, "invalid character %q at start of value", c)
	}
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, errAt(i, "invalid literal")
	}
	return i + len(lit), nil
}

// scanNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return i, errAt(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, errAt(start, "invalid number")
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, errAt(start, "invalid number")
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	return i, nil
}

// plainByte marks the bytes a string holds as they are: printable ASCII
// but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Word-at-a-time tests (the bit tricks of "Bit Twiddling Hacks": hasless
// and haszero), each exact as to whether any byte of w matches.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// needsLook reports whether any byte of w ends or leaves the plain run of
// a string: a control character (< 0x20), a quote, a backslash, or a byte
// of a multi-byte UTF-8 sequence (>= 0x80).
func needsLook(w uint64) bool {
	return ((w-0x20*ones)|w|bytesOf(w, '"')|bytesOf(w, '\\'))&highs != 0
}

// hasQuote reports whether any byte of w is a quote.
func hasQuote(w uint64) bool { return bytesOf(w, '"')&highs != 0 }

// bytesOf has the high bit of a byte set at (at least) the first byte of w
// that is c, and none when no byte is.
func bytesOf(w uint64, c byte) uint64 {
	x := w ^ (uint64(c) * ones)
	return (x - ones) &^ x
}

// scanString checks the string at b[i] == '"' and returns where it ends
// and whether it holds an escape.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	start := i
	i++
	for {
		// The common case: printable ASCII without quote or backslash,
		// eight bytes at a time, then byte by byte up to the one that
		// needs a look.
		for i+8 <= len(b) && !needsLook(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, errAt(start, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			n, err := scanEscape(b, i)
			if err != nil {
				return i, escaped, err
			}
			i += n
		case c < 0x20:
			return i, escaped, errAt(i, "control character in string")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, errAt(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// scanEscape checks the escape at b[i] == '\\' and returns its length.
func scanEscape(b []byte, i int) (int, error) {
	if i+1 >= len(b) {
		return 0, errAt(i, "unterminated escape")
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return 0, errAt(i, "invalid escape")
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low must follow
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok := hex4(b, i+8); ok && lo >= 0xdc00 && lo <= 0xdfff {
					return 12, nil
				}
			}
			return 0, errAt(i, "invalid surrogate pair")
		case utf16.IsSurrogate(r):
			return 0, errAt(i, "invalid surrogate pair")
		}
		return 6, nil
	}
	return 0, errAt(i, "invalid escape")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unescape appends the string a checked string literal q (quotes
// included) holds to dst.
func unescape(dst, q []byte) []byte {
	in := q[1 : len(q)-1]
	for i := 0; i < len(in); {
		c := in[i]
		if c != '\\' {
			j := i + 1
			for j < len(in) && in[j] != '\\' {
				j++
			}
			dst = append(dst, in[i:j]...)
			i = j
			continue
		}
		switch in[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(in, i+2)
			if utf16.IsSurrogate(r) {
				lo, _ := hex4(in, i+8)
				dst = utf8.AppendRune(dst, utf16.DecodeRune(r, lo))
				i += 12
				continue
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // " \ /
			dst = append(dst, in[i+1])
		}
		i += 2
	}
	return dst
}

// stringValue returns the string a checked string literal q holds: q's
// inside (not a copy) when it has no escape.
func stringValue(q []byte, escaped bool) []byte {
	if !escaped {
		return q[1 : len(q)-1]
	}
	return unescape(nil, q)
}

// memberFunc receives an object member: its name (unescaped; valid during
// the call) and its value as b[vs:ve].
type memberFunc func(name []byte, vs, ve int) error

// scanObject checks the object at b[i] == '{' and calls fn (when not nil)
// for each member, in order, and returns where it ends.
func scanObject(b []byte, i, depth int, fn memberFunc) (int, error) {
	if depth > maxDepth {
		return i, errAt(i, "nesting too deep")
	}
	start := i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	var names nameSet
	for {
		if i >= len(b) || b[i] != '"' {
			return i, errAt(i, "want a member name")
		}
		ne, esc, err := scanString(b, i)
		if err != nil {
			return i, err
		}
		name := stringValue(b[i:ne], esc)
		if !names.add(b, i, ne, esc, name) {
			return i, errAt(i, "duplicate name %q", name)
		}
		i = skipSpace(b, ne)
		if i >= len(b) || b[i] != ':' {
			return i, errAt(i, "want ':' after a member name")
		}
		vs := skipSpace(b, i+1)
		ve, err := scanValue(b, vs, depth)
		if err != nil {
			return ve, err
		}
		if fn != nil {
			if err := fn(name, vs, ve); err != nil {
				return ve, err
			}
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return i, errAt(start, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errAt(i, "want ',' or '}' in an object")
		}
	}
}

// scanArray checks the array at b[i] == '[' and calls fn (when not nil)
// with each element's span, and returns where it ends.
func scanArray(b []byte, i, depth int, fn func(vs, ve int) error) (int, error) {
	if depth > maxDepth {
		return i, errAt(i, "nesting too deep")
	}
	start := i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		ve, err := scanValue(b, i, depth)
		if err != nil {
			return ve, err
		}
		if fn != nil {
			if err := fn(i, ve); err != nil {
				return ve, err
			}
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return i, errAt(start, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, errAt(i, "want ',' or ']' in an array")
		}
	}
}

// nameSet finds duplicate names: the first names by their place in the
// input (no allocation), a map beyond.
type nameSet struct {
	n int
	// seen has a bit for each name's length and last byte (a Bloom
	// filter of one hash): a name whose bit is clear is new without a
	// comparison, which is every name of the objects the fold reads.
	seen  uint64
	spans [nameListMax]nameSpan
	m     map[string]struct{}
}

type nameSpan struct {
	start, end int32 // the quoted name in the input
	escaped    bool
}

const nameListMax = 16

// add records the name b[start:end] (quoted; unescaped: name) and reports
// whether it is new.
func (s *nameSet) add(b []byte, start, end int, escaped bool, name []byte) bool {
	if s.m != nil {
		if _, dup := s.m[string(name)]; dup {
			return false
		}
		s.m[string(name)] = struct{}{}
		return true
	}
	h := uint(len(name)) * 7
	if len(name) > 0 {
		h += uint(name[len(name)-1])
	}
	bit := uint64(1) << (h & 63)
	if s.seen&bit == 0 && s.n < nameListMax {
		s.seen |= bit
		s.spans[s.n] = nameSpan{int32(start), int32(end), escaped}
		s.n++
		return true
	}
	s.seen |= bit
	for _, sp := range s.spans[:s.n] {
		prev := b[sp.start:sp.end]
		if !sp.escaped && !escaped {
			if len(prev) == len(name)+2 && bytes.Equal(prev[1:len(prev)-1], name) {
				return false
			}
		} else if bytes.Equal(stringValue(prev, sp.escaped), name) {
			return false
		}
	}
	if s.n < nameListMax {
		s.spans[s.n] = nameSpan{int32(start), int32(end), escaped}
		s.n++
		return true
	}
	s.m = make(map[string]struct{}, 2*nameListMax)
	for _, sp := range s.spans[:s.n] {
		s.m[string(stringValue(b[sp.start:sp.end], sp.escaped))] = struct{}{}
	}
	s.m[string(name)] = struct{}{}
	return true
}

// scanDocument checks that b holds exactly one JSON value (space around
// it allowed) and returns its span.
func scanDocument(b []byte) (vs, ve int, err error) {
	vs = skipSpace(b, 0)
	ve, err = scanValue(b, vs, 0)
	if err != nil {
		return 0, 0, err
	}
	if skipSpace(b, ve) != len(b) {
		return 0, 0, errors.New("invalid JSON: data after the value")
	}
	return vs, ve, nil
}

// eachTopMember calls fn for each member of b, exactly one JSON object
// (or null: no member).
func eachTopMember(b []byte, fn memberFunc) error {
	vs := skipSpace(b, 0)
	var ve int
	var err error
	switch {
	case vs < len(b) && b[vs] == '{':
		ve, err = scanObject(b, vs, 1, fn)
	case vs < len(b) && b[vs] == 'n':
		ve, err = scanLiteral(b, vs, "null")
	default:
		_, _, err = scanDocument(b)
		if err == nil {
			err = fmt.Errorf("want an object, got %s", kindName(b[vs]))
		}
		return err
	}
	if err != nil {
		return err
	}
	if skipSpace(b, ve) != len(b) {
		return errors.New("invalid JSON: data after the value")
	}
	return nil
}

// A second way through JSON the scan above has checked already: the fold
// checks each operation's envelope once, whole (DecodeEnvelope), and then
// reads its payload, and the attrs inside it, again. The skim finds where
// each member and value ends and nothing more (no checks of UTF-8,
// escapes, numbers or duplicate names): on JSON that is not valid it
// returns some result or an error, never a panic, but not a meaningful one.

// walker says how to read an object: checkAll (eachTopMember) for any
// input, checkedAlready (eachValidMember) for input a scan has checked.
// (A value, not a function: a function value would make every closure
// handed to it escape to the heap.)
type walker uint8

const (
	checkAll walker = iota
	checkedAlready
)

// each calls fn for each member of b, exactly one JSON object (or null: no
// member).
func (w walker) each(b []byte, fn memberFunc) error {
	if w == checkedAlready {
		return eachValidMember(b, fn)
	}
	return eachTopMember(b, fn)
}

var errSkim = errors.New("invalid JSON (skimmed as checked)")

// eachValidMember is eachTopMember for b that is valid JSON.
func eachValidMember(b []byte, fn memberFunc) error {
	i := skipSpace(b, 0)
	switch {
	case i < len(b) && b[i] == 'n':
		return nil
	case i >= len(b) || b[i] != '{':
		return fmt.Errorf("want an object, got %s", kindName(at(b, i)))
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		ne := skimString(b, i)
		if ne > len(b) {
			return errSkim
		}
		q := b[i:ne]
		name := stringValue(q, bytes.IndexByte(q, '\\') >= 0)
		i = skipSpace(b, ne)
		vs := skipSpace(b, i+1)
		ve := skimValue(b, vs)
		if ve > len(b) || ve <= vs {
			return errSkim
		}
		if err := fn(name, vs, ve); err != nil {
			return err
		}
		i = skipSpace(b, ve)
		if i >= len(b) || b[i] != ',' {
			return nil
		}
		i = skipSpace(b, i+1)
	}
	return errSkim
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// skimValue returns where the value at b[i:] ends (past len(b) when b is
// cut short).
func skimValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b) + 1
	}
	switch b[i] {
	case '"':
		return skimString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skimString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b) + 1
	}
	for i < len(b) && !endsScalar[b[i]] {
		i++
	}
	return i
}

// endsScalar marks the bytes that end a number or a literal.
var endsScalar = func() (t [256]bool) {
	for _, c := range []byte(",}] \t\n\r") {
		t[c] = true
	}
	return t
}()

// skimString returns where the string at b[i] == '"' ends (past len(b)
// when it does not).
func skimString(b []byte, i int) int {
	start := i
	for i++; ; i++ {
		for i+8 <= len(b) && !hasQuote(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && b[i] != '"' {
			i++
		}
		if i >= len(b) {
			return len(b) + 1
		}
		k := i - 1
		for k > start && b[k] == '\\' {
			k--
		}
		if (i-1-k)%2 == 0 { // not escaped: an even run of backslashes
			return i + 1
		}
	}
}
