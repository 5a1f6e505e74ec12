package fold

import (
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// The JSON of a snapshot, written by hand: the same bytes the
// json package writes for the struct (members in declaration order, the
// omitempty / omitzero members left out when empty, strings quoted the
// minimal way, attrs and external_ids by name), without reflection. The
// raw JSON values (attrs members, metadata) are kept normalised by the
// fold (normalize), so they are copied as they are.

// AppendEventJSON appends the JSON of e to dst.
func AppendEventJSON(dst []byte, e *Event) ([]byte, error) {
	w := jsonWriter{b: dst}
	w.b = append(w.b, '{')
	w.str("channel_id", e.ChannelID, false)
	w.str("event_id", e.EventID, false)
	w.str("thing_id", e.ThingID, true)
	w.str("title", e.Title, false)
	w.str("description", e.Description, true)
	w.str("status", e.Status, false)
	w.str("message", e.Message, false)
	w.str("severity", e.Severity, false)
	w.str("state", e.State, false)
	w.int("event_time", e.EventTime)
	w.int("started_at", e.StartedAt)
	w.optInt("ended_at", e.EndedAt)
	w.list("tags", e.Tags)
	w.list("images", e.Images)
	w.attrs(e.Attrs)
	w.raw("metadata", e.Metadata)
	w.str("ciphertext", e.Ciphertext, true)
	w.optInt("deadline", e.Deadline)
	w.int("created_at", e.CreatedAt)
	w.int("updated_at", e.UpdatedAt)
	w.uint("version", e.Version)
	w.uint("last_seq", e.LastSeq)
	w.str("last_op_id", e.LastOpID, false)
	w.b = append(w.b, '}')
	return w.b, w.err
}

// AppendThingJSON appends the JSON of t to dst.
func AppendThingJSON(dst []byte, t *Thing) ([]byte, error) {
	w := jsonWriter{b: dst}
	w.b = append(w.b, '{')
	w.str("channel_id", t.ChannelID, false)
	w.str("thing_id", t.ThingID, false)
	w.str("title", t.Title, true)
	w.str("description", t.Description, true)
	w.str("state", t.State, false)
	w.list("tags", t.Tags)
	w.str("primary_image", t.PrimaryImage, true)
	w.list("images", t.Images)
	w.attrs(t.Attrs)
	w.raw("metadata", t.Metadata)
	if len(t.ExternalIDs) > 0 {
		w.name("external_ids")
		keys := make([]string, 0, len(t.ExternalIDs))
		for k := range t.ExternalIDs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.b = append(w.b, '{')
		for i, k := range keys {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.quote(k)
			w.b = append(w.b, ':')
			w.quote(t.ExternalIDs[k])
		}
		w.b = append(w.b, '}')
	}
	w.str("location_type", t.LocationType, true)
	w.str("location_value", t.LocationValue, true)
	w.str("ciphertext", t.Ciphertext, true)
	w.int("created_at", t.CreatedAt)
	w.int("observed_at", t.ObservedAt)
	w.optInt("archived_at", t.ArchivedAt)
	w.optInt("deleted_at", t.DeletedAt)
	w.int("updated_at", t.UpdatedAt)
	w.uint("version", t.Version)
	w.uint("last_seq", t.LastSeq)
	w.str("last_op_id", t.LastOpID, false)
	w.b = append(w.b, '}')
	return w.b, w.err
}

// appendJSON appends attrs as a JSON object.
func (a Attrs) appendJSON(dst []byte) ([]byte, error) {
	w := jsonWriter{b: dst, members: 1}
	w.attrsObject(a)
	return w.b, w.err
}

// jsonWriter appends the members of one object; the first error sticks.
type jsonWriter struct {
	b       []byte
	members int
	err     error
}

// name starts a member.
func (w *jsonWriter) name(n string) {
	if w.members > 0 {
		w.b = append(w.b, ',')
	}
	w.members++
	w.b = append(w.b, '"')
	w.b = append(w.b, n...) // member names are plain ASCII
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) quote(s string) {
	var err error
	if w.b, err = jsontext.AppendQuote(w.b, s); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *jsonWriter) str(n, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	w.name(n)
	w.quote(v)
}

func (w *jsonWriter) int(n string, v int64) {
	w.name(n)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) uint(n string, v uint64) {
	w.name(n)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) optInt(n string, v *int64) {
	if v != nil {
		w.int(n, *v)
	}
}

func (w *jsonWriter) list(n string, l []string) {
	if len(l) == 0 {
		return
	}
	w.name(n)
	w.b = append(w.b, '[')
	for i, s := range l {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.quote(s)
	}
	w.b = append(w.b, ']')
}

func (w *jsonWriter) raw(n string, v jsontext.Value) {
	if len(v) == 0 {
		return
	}
	w.name(n)
	w.b = append(w.b, v...)
}

func (w *jsonWriter) attrs(a Attrs) {
	w.name("attrs")
	w.attrsObject(a)
}

func (w *jsonWriter) attrsObject(a Attrs) {
	w.b = append(w.b, '{')
	for i, m := range a {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.quote(m.Name)
		w.b = append(w.b, ':')
		w.b = append(w.b, m.Value...)
	}
	w.b = append(w.b, '}')
}
