package compat

import (
	"bytes"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// valueKind is the shape of one parameter value.
type valueKind uint8

const (
	textValue   valueKind = iota // a string; in JSON also a number or boolean, as its JSON text
	listValue                    // a JSON array of strings
	objectValue                  // a JSON object (metadata)
)

// value is one parameter as the sender gave it.
type value struct {
	name string // as sent, for error details
	kind valueKind
	text string
	list []string
	obj  jsontext.Value
}

// params are one source's parameters (the query, the headers, the body,
// the path) by canonical name.
type params map[string]value

// has reports whether p holds the parameter canon.
func (p params) has(canon string) bool {
	_, ok := p[canon]
	return ok
}

// or returns p with the parameters of q that p lacks: p takes precedence.
func (p params) or(q params) params {
	out := maps.Clone(p)
	if out == nil {
		out = params{}
	}
	for k, v := range q {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// vocabulary is what a tool's parameters are called.
type vocabulary struct {
	// names maps each accepted spelling to its canonical name; an empty
	// canonical name marks a parameter of the tool that makes no
	// difference here (a display hint of the tool's own app): accepted and
	// dropped.
	names map[string]string
	// refused maps the tool's parameters whose meaning the gateway cannot
	// honour (scheduled delivery, e-mail) to the reason: a request with
	// one is rejected rather than delivered differently from what it asks.
	refused map[string]string
	// foldCase matches spellings case-insensitively (Bark's server
	// lower-cases parameter names).
	foldCase bool
	// zeroIsAbsent (JSON only): a member whose value is 0, false, "" or
	// [] is left out, as if not sent.
	zeroIsAbsent bool
}

// spelling is name as the vocabulary's maps spell it.
func (voc vocabulary) spelling(name string) string {
	if voc.foldCase {
		return strings.ToLower(name)
	}
	return name
}

// add records one parameter of a source. Unknown and refused names, and a
// parameter given twice in one source (also under two of its spellings),
// are rejected with code.
func (p params) add(voc vocabulary, name string, v value, code apierr.Code) *apierr.Error {
	key := voc.spelling(name)
	if why, ok := voc.refused[key]; ok {
		return apierr.Fieldf(code, safeName(name), "%s", why)
	}
	canon, ok := voc.names[key]
	switch {
	case !ok:
		return apierr.Fieldf(code, safeName(name), "unknown parameter")
	case canon == "":
		return nil
	}
	if prev, dup := p[canon]; dup {
		if prev.name == name {
			return apierr.Fieldf(code, safeName(name), "parameter given more than once")
		}
		return apierr.Fieldf(code, safeName(name), "parameter given more than once (also as %s)", safeName(prev.name))
	}
	v.name = name
	p[canon] = v
	return nil
}

// fromValues reads url-encoded parameters (a query string or a form body),
// in sorted order so the first error reported is stable. Values must be
// UTF-8.
func fromValues(voc vocabulary, vals url.Values, code apierr.Code) (params, *apierr.Error) {
	p := params{}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		vs := vals[k]
		if len(vs) > 1 {
			return nil, apierr.Fieldf(code, safeName(k), "parameter given more than once")
		}
		if len(vs) == 0 {
			continue
		}
		if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
			return nil, apierr.Fieldf(code, safeName(k), "not valid UTF-8")
		}
		if err := p.add(voc, k, value{text: vs[0]}, code); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseValues parses a query string or a url-encoded form as the tools'
// servers and PushGo's own compat routes do (Bark's fasthttp, ntfy's and
// ServerChan's; axum's Query): pairs are split at '&' only, so a ';' in a
// value is text ("title=CPU;MEM"), and a '%' that starts no escape is kept
// ("CPU%20at%20100%"), as GET /message reads its query
// (httpapi.FormValues). Go's url.ParseQuery refuses a pair holding either,
// which refused the whole request. It never fails.
func parseValues(s string) (url.Values, error) {
	return httpapi.FormValues(s), nil
}

// fromQuery reads the query string strictly (url.Values would drop a
// malformed pair without a word).
func fromQuery(voc vocabulary, c *echo.Context) (params, *apierr.Error) {
	vals, err := parseValues(c.Request().URL.RawQuery)
	if err != nil {
		return nil, apierr.Fieldf(apierr.InvalidQuery, "query", "malformed query string")
	}
	return fromValues(voc, vals, apierr.InvalidQuery)
}

// readBody returns the request body as every PushGo route reads it
// (httpapi.ReadBody): decoded as its Content-Encoding says, up to
// wire.MaxBodyBytes counted on the bytes read (a chunked body cannot get
// past it), 413 payload_too_large over it, a body that did not arrive in
// time answered as a retry.
func readBody(c *echo.Context) ([]byte, *apierr.Error) { return httpapi.ReadBody(c) }

// fromBody reads the parameters of a request body by its Content-Type:
// application/json (an object), application/x-www-form-urlencoded or
// multipart/form-data (fields only, no files). An empty body has none; a
// body without Content-Type is JSON when it starts with '{' and a form
// otherwise.
func fromBody(voc vocabulary, c *echo.Context) (params, *apierr.Error) {
	body, aerr := readBody(c)
	if aerr != nil {
		return nil, aerr
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params{}, nil
	}
	ct := c.Request().Header.Get("Content-Type")
	mt, mp, err := mime.ParseMediaType(ct)
	switch {
	case ct == "" && bytes.TrimSpace(body)[0] == '{', err == nil && mt == "application/json":
		return fromJSON(voc, body)
	case ct == "", err == nil && mt == "application/x-www-form-urlencoded":
		vals, err := parseValues(string(body))
		if err != nil {
			return nil, &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "request body is not a valid url-encoded form"}
		}
		return fromValues(voc, vals, apierr.InvalidRequestBody)
	case err == nil && mt == "multipart/form-data":
		return fromMultipart(voc, body, mp["boundary"])
	}
	return nil, &apierr.Error{Code: apierr.InvalidRequestBody,
		Detail: "Content-Type must be application/json, application/x-www-form-urlencoded or multipart/form-data"}
}

// fromMultipart reads the fields of a multipart/form-data body; a file part
// is rejected (attachments are not supported).
func fromMultipart(voc vocabulary, body []byte, boundary string) (params, *apierr.Error) {
	invalid := &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "request body is not a valid multipart form"}
	if boundary == "" {
		return nil, invalid
	}
	form, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(wire.MaxBodyBytes)
	if err != nil {
		return nil, invalid
	}
	defer func() { _ = form.RemoveAll() }()
	for name := range form.File {
		return nil, apierr.Fieldf(apierr.InvalidRequestBody, safeName(name), "file uploads are not supported")
	}
	return fromValues(voc, form.Value, apierr.InvalidRequestBody)
}

// fromJSON reads a JSON object's members as parameters, as strictly as
// wire.Decode reads a PushGo body (valid UTF-8, no duplicate member, nothing
// after the object), and answers a refusal as it does (wire.Classify): a
// duplicate member or text that is not Unicode is invalid_json_data naming
// the member, malformed JSON invalid_json_syntax. A string, number or
// boolean is a text value, an array of strings a list, an object an object
// value (metadata); null is absent.
func fromJSON(voc vocabulary, body []byte) (params, *apierr.Error) {
	decodeErr := func(err error) *apierr.Error { return wire.Classify(body, err) }
	d := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		if err == nil {
			return nil, &apierr.Error{Code: apierr.InvalidJSONData, Detail: "request body must be a JSON object"}
		}
		return nil, decodeErr(err)
	}
	p := params{}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return nil, decodeErr(err)
		}
		name := tok.String()
		raw, err := d.ReadValue()
		if err != nil {
			return nil, decodeErr(err)
		}
		if voc.zeroIsAbsent && zeroJSON(raw) {
			continue
		}
		if canon, known := voc.names[voc.spelling(name)]; known && canon == "" {
			continue // accepted and dropped, whatever its shape
		}
		v, ok := jsonValue(raw)
		if !ok {
			return nil, apierr.Fieldf(apierr.InvalidJSONData, safeName(name), "must be a string, number, boolean, array of strings or object")
		}
		if raw.Kind() == 'n' {
			continue
		}
		if err := p.add(voc, name, v, apierr.InvalidJSONData); err != nil {
			return nil, err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, decodeErr(err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, apierr.New(apierr.InvalidJSONSyntax) // data after the object
	}
	return p, nil
}

// zeroJSON reports whether raw is 0, false, "" or [].
func zeroJSON(raw jsontext.Value) bool {
	switch string(bytes.Join(bytes.Fields(raw), nil)) {
	case "0", "false", `""`, "[]":
		return true
	}
	return false
}

// jsonValue converts one member's value; ok is false for an array holding
// anything but strings.
func jsonValue(raw jsontext.Value) (value, bool) {
	switch raw.Kind() {
	case '"':
		tok, err := jsontext.NewDecoder(bytes.NewReader(raw)).ReadToken()
		if err != nil {
			return value{}, false
		}
		return value{text: tok.String()}, true
	case '0', 't', 'f', 'n':
		return value{text: string(raw)}, true
	case '{':
		return value{kind: objectValue, obj: raw.Clone()}, true
	case '[':
		d := jsontext.NewDecoder(bytes.NewReader(raw))
		_, _ = d.ReadToken()
		list := []string{}
		for d.PeekKind() == '"' {
			tok, err := d.ReadToken()
			if err != nil {
				return value{}, false
			}
			list = append(list, tok.String())
		}
		if d.PeekKind() != ']' {
			return value{}, false
		}
		return value{kind: listValue, list: list}, true
	}
	return value{}, false
}

// safeName makes a client-supplied parameter name fit to echo in a detail.
func safeName(k string) string {
	if len(k) > 64 {
		k = k[:64]
	}
	if q := strconv.Quote(k); q[1:len(q)-1] != k {
		return q
	}
	return k
}

// pathParam is the path parameter name, percent-decoded: echo matches on
// the escaped path when the request's path has escapes Go would not write
// (%2F in a Bark body, %3A in a key), and then hands the parameters over
// still escaped. plusIsSpace decodes a '+' as a space too, as Bark's
// server does (url.QueryUnescape).
func pathParam(c *echo.Context, name string, plusIsSpace bool) (string, *apierr.Error) {
	v := c.Param(name)
	escaped := c.Request().URL.RawPath != ""
	var err error
	switch {
	case escaped && plusIsSpace:
		v, err = url.QueryUnescape(v)
	case escaped:
		v, err = url.PathUnescape(v)
	case plusIsSpace:
		v = strings.ReplaceAll(v, "+", " ")
	}
	if err != nil {
		return "", apierr.Fieldf(apierr.InvalidQuery, name, "malformed percent-encoding in the path")
	}
	if !utf8.ValidString(v) {
		return "", apierr.Fieldf(apierr.InvalidQuery, name, "path segment is not valid UTF-8")
	}
	return v, nil
}
