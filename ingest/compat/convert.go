package compat

import (
	"bytes"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// defaultTitle is the title of a message sent without one, as PushGo's
// compat handlers ("Notification"): a Message requires a title, and these
// tools do not.
const defaultTitle = "Notification"

// text is the text parameter canon; nil when it is absent or blank (a
// template's empty value is no value). It is returned as sent: the
// validation trims what it trims, and a Markdown body is kept as is.
func (p params) text(canon string) (*string, *apierr.Error) {
	v, ok := p[canon]
	if !ok {
		return nil, nil
	}
	if v.kind != textValue {
		return nil, apierr.Fieldf(apierr.InvalidJSONData, safeName(v.name), "must be a string")
	}
	if strings.TrimSpace(v.text) == "" {
		return nil, nil
	}
	return &v.text, nil
}

// first is the first of the text parameters canons that is given.
func (p params) first(canons ...string) (*string, *apierr.Error) {
	for _, c := range canons {
		s, err := p.text(c)
		if s != nil || err != nil {
			return s, err
		}
	}
	return nil, nil
}

// list is the list parameter canon: a JSON array as sent, or a text split
// at any of seps with each item trimmed and blank items dropped (PushGo's
// CompatCsvList). nil when absent.
func (p params) list(canon, seps string) ([]string, *apierr.Error) {
	v, ok := p[canon]
	if !ok {
		return nil, nil
	}
	switch v.kind {
	case listValue:
		return v.list, nil
	case textValue:
		var out []string
		for _, s := range strings.FieldsFunc(v.text, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, apierr.Fieldf(apierr.InvalidJSONData, safeName(v.name), "must be a list of strings")
}

// object is the JSON object parameter canon: an object, or its JSON text
// (a query or form value, as GET /message's metadata). nil when absent or
// blank; whether it is an object is the validation's to say.
func (p params) object(canon string) (jsontext.Value, *apierr.Error) {
	v, ok := p[canon]
	switch {
	case !ok:
		return nil, nil
	case v.kind == objectValue:
		return v.obj, nil
	case v.kind == textValue && strings.TrimSpace(v.text) == "":
		return nil, nil
	case v.kind == textValue && jsontext.Value(v.text).IsValid():
		return jsontext.Value(v.text), nil
	}
	return nil, apierr.Fieldf(apierr.MetadataInvalid, safeName(v.name), "not a JSON object")
}

// millis is the timestamp parameter canon (seconds or milliseconds).
func (p params) millis(canon string) (*wire.Millis, *apierr.Error) {
	s, err := p.text(canon)
	if s == nil || err != nil {
		return nil, err
	}
	ms, ok := wire.ParseMillis(strings.TrimSpace(*s))
	if !ok {
		return nil, apierr.Field(apierr.InvalidTimestamp, safeName(p[canon].name))
	}
	m := wire.Millis(ms)
	return &m, nil
}

// setPushGoFields sets the fields PushGo's own compat parameters carry, by
// canonical name: op_id, url, images, tags (lists split at seps),
// ciphertext, occurred_at, ttl and metadata. A tool's conversion then adds
// what its own parameters say.
func setPushGoFields(req *ops.MessageRequest, p params, seps string) *apierr.Error {
	var err *apierr.Error
	if req.OpID, err = p.text("op_id"); err != nil {
		return err
	}
	if req.URL, err = p.text("url"); err != nil {
		return err
	}
	if req.Images, err = p.list("images", seps); err != nil {
		return err
	}
	if req.Tags, err = p.list("tags", seps); err != nil {
		return err
	}
	req.Tags = ops.FitTags(req.Tags)
	if req.Ciphertext, err = p.text("ciphertext"); err != nil {
		return err
	}
	if req.OccurredAt, err = p.millis("occurred_at"); err != nil {
		return err
	}
	if req.TTL, err = p.millis("ttl"); err != nil {
		return err
	}
	req.Metadata, err = p.object("metadata")
	return err
}

// hint is one display hint of a tool kept in the message's metadata.
type hint struct {
	key   string // "compat.<tool>.<name>"
	value *string
}

// withHints adds the tool's display hints (Bark's sound, icon, group;
// ntfy's icon) to the sender's metadata object under their compat.<tool>
// keys, as PushGo's CompatMetadata::insert_text: trimmed, blank ones left
// out, a hint replacing a sender's member of the same key. A hint longer
// than a metadata value may be (max bytes: a signed icon URL) is left out
// too, as if not given: the message was refused 400
// metadata_value_too_long for a field its sender never sent, where ntfy
// and Bark take any length. Metadata that is not an object is left for
// the validation to reject.
func withHints(meta jsontext.Value, max int, hints ...hint) (jsontext.Value, *apierr.Error) {
	var add []hint
	for _, h := range hints {
		if h.value == nil {
			continue
		}
		if v := strings.TrimSpace(*h.value); v != "" && len(v) <= max {
			add = append(add, hint{h.key, &v})
		}
	}
	if len(add) == 0 {
		return meta, nil
	}
	out := jsontext.Value{'{'}
	member := func(name string, val []byte) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, name)
		out = append(out, ':')
		out = append(out, val...)
	}
	if len(bytes.TrimSpace(meta)) > 0 {
		d := jsontext.NewDecoder(bytes.NewReader(meta))
		if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
			return meta, nil
		}
		for d.PeekKind() != '}' {
			tok, err := d.ReadToken()
			if err != nil {
				return meta, nil
			}
			name := tok.String() // before ReadValue, which voids tok
			val, err := d.ReadValue()
			if err != nil {
				return meta, nil
			}
			if !hinted(add, strings.TrimSpace(name)) {
				member(name, val)
			}
		}
	}
	for _, h := range add {
		q, err := jsontext.AppendQuote(nil, *h.value)
		if err != nil {
			return nil, apierr.Fieldf(apierr.MetadataValueInvalid, h.key, "not valid UTF-8")
		}
		member(h.key, q)
	}
	return append(out, '}'), nil
}

func hinted(hints []hint, key string) bool {
	for _, h := range hints {
		if h.key == key {
			return true
		}
	}
	return false
}
