package fold

import (
	"fmt"
	"slices"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// CheckEnvelope rejects an envelope this fold does not understand: a newer
// version, an unknown operation, or ids ingest never writes (the store's
// keys rely on their alphabet). The projector sets such an entry aside
// rather than fold something it cannot interpret; a version that
// understands it folds it (the projector rebuilds when it finds one).
func CheckEnvelope(env *ops.Envelope) error {
	if env.V < 1 || env.V > ops.EnvelopeVersion {
		return fmt.Errorf("envelope version %d not supported (max %d)", env.V, ops.EnvelopeVersion)
	}
	if !env.Op.Valid() {
		return fmt.Errorf("unknown operation %q", env.Op)
	}
	if !ids.CanonicalChannelID(env.ChannelID) {
		return fmt.Errorf("invalid channel_id %q", env.ChannelID)
	}
	if !ids.ValidEntityID(env.EntityID) {
		return fmt.Errorf("invalid entity_id %q", env.EntityID)
	}
	if !ids.ValidOpID(env.OpID) {
		return fmt.Errorf("invalid op_id %q", env.OpID)
	}
	return nil
}

// ApplyEvent folds one event operation at stream sequence seq into prev
// (nil when the event is unknown: its create, or a log whose create has aged
// out); prev must be the snapshot of env's entity, as the result takes
// env's ids. It returns a new snapshot; prev is not modified. env.Payload must
// be valid JSON, as DecodeEnvelope (or the json package) leaves it: it is
// read without a second check.
func ApplyEvent(prev *Event, env *ops.Envelope, seq uint64) (*Event, error) {
	var p ops.EventPayload
	if err := decodeEventPayload(checkedAlready, env.Payload, &p); err != nil {
		return nil, fmt.Errorf("seq %d: event payload: %w", seq, err)
	}
	e := &Event{}
	if prev != nil {
		*e = *prev
	} else {
		e.CreatedAt, e.StartedAt = env.AcceptedAt, p.EventTime
	}
	// The ids are prev's (it was found under them), but the envelope's
	// copies were just decoded: the store's keys are built from them next,
	// and prev's were allocated when the event was last read or created,
	// long out of the CPU's caches in a fold of many entities.
	e.ChannelID, e.EventID = env.ChannelID, env.EntityID
	if env.Op == ops.EventCreate {
		e.Title = p.Title
		if p.StartedAt != nil {
			e.StartedAt = *p.StartedAt
		}
	} else if p.Title != "" {
		e.Title = p.Title
	}
	e.Status, e.Message, e.Severity, e.EventTime = p.Status, p.Message, p.Severity, p.EventTime
	setIfGiven(&e.ThingID, p.ThingID)
	setIfGiven(&e.Description, p.Description)
	setIfGiven(&e.Ciphertext, p.Ciphertext)
	replaceList(&e.Tags, p.Tags)
	replaceList(&e.Images, p.Images)
	if err := replaceValue(&e.Metadata, p.Metadata); err != nil {
		return nil, fmt.Errorf("seq %d: metadata: %w", seq, err)
	}
	attrs, counted, err := mergePatch(checkedAlready, e.Attrs, e.attrsCounted, p.Attrs)
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", seq, err)
	}
	e.Attrs, e.attrsCounted = attrs, counted
	e.State = ops.EventOngoing
	if p.Deadline != nil {
		d := *p.Deadline
		e.Deadline = &d
	}
	if env.Op == ops.EventClose {
		e.Deadline = nil
		e.State = ops.EventClosed
		end := p.EventTime
		if p.EndedAt != nil {
			end = *p.EndedAt
		}
		e.EndedAt = &end
	}
	e.UpdatedAt, e.Version, e.LastSeq, e.LastOpID = env.AcceptedAt, e.Version+1, seq, env.OpID
	return e, nil
}

// ApplyThing folds one thing operation into prev (nil when unknown), as
// ApplyEvent does (env.Payload valid JSON).
func ApplyThing(prev *Thing, env *ops.Envelope, seq uint64) (*Thing, error) {
	var p ops.ThingPayload
	if err := decodeThingPayload(checkedAlready, env.Payload, &p); err != nil {
		return nil, fmt.Errorf("seq %d: thing payload: %w", seq, err)
	}
	t := &Thing{}
	if prev != nil {
		*t = *prev
	} else {
		t.CreatedAt = p.ObservedAt
	}
	t.ChannelID, t.ThingID = env.ChannelID, env.EntityID // as in ApplyEvent
	if p.CreatedAt != nil {
		t.CreatedAt = *p.CreatedAt
	}
	setIfGiven(&t.Title, p.Title)
	setIfGiven(&t.Description, p.Description)
	setIfGiven(&t.PrimaryImage, p.PrimaryImage)
	setIfGiven(&t.Ciphertext, p.Ciphertext)
	if p.LocationType != "" {
		t.LocationType, t.LocationValue = p.LocationType, p.LocationValue
	}
	replaceList(&t.Tags, p.Tags)
	replaceList(&t.Images, p.Images)
	if err := replaceValue(&t.Metadata, p.Metadata); err != nil {
		return nil, fmt.Errorf("seq %d: metadata: %w", seq, err)
	}
	ids, idsCut := mergeExternalIDs(t.ExternalIDs, p.ExternalIDs)
	t.ExternalIDs = ids
	attrs, counted, err := mergePatch(checkedAlready, t.Attrs, t.attrsCounted, p.Attrs)
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", seq, err)
	}
	if idsCut {
		attrs, counted = attrs.marked(), 0
	}
	t.Attrs, t.attrsCounted = attrs, counted
	t.ObservedAt = p.ObservedAt
	switch env.Op {
	case ops.ThingCreate, ops.ThingUpdate:
		// An update re-activates an archived thing (as PushGo).
		t.State, t.ArchivedAt = ops.ThingActive, nil
	case ops.ThingArchive:
		at := p.ObservedAt
		t.State, t.ArchivedAt = ops.ThingArchived, &at
	case ops.ThingDelete:
		at := p.ObservedAt
		if p.DeletedAt != nil {
			at = *p.DeletedAt
		}
		t.State, t.DeletedAt = ops.ThingDeleted, &at
	}
	t.UpdatedAt, t.Version, t.LastSeq, t.LastOpID = env.AcceptedAt, t.Version+1, seq, env.OpID
	return t, nil
}

func setIfGiven(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// replaceList replaces a list when the operation carries one: nil means
// absent (keep), an empty list clears.
func replaceList(dst *[]string, v []string) {
	if v == nil {
		return
	}
	if len(v) == 0 {
		*dst = nil
		return
	}
	*dst = append([]string(nil), v...)
}

// replaceValue replaces a JSON value (metadata) when the operation
// carries one, normalised as the snapshot keeps it.
func replaceValue(dst *jsontext.Value, v jsontext.Value) error {
	if len(v) == 0 || v.Kind() == 'n' {
		return nil
	}
	nv, err := normalize(v)
	if err == nil {
		*dst = nv
	}
	return err
}

// mergeExternalIDs applies an external_ids patch: a null value removes.
// An id that would take them past MaxExternalIDsBytes is left out (cut
// reports it), as attrs past theirs: the patch's removals first, then
// its ids in name order, so the ids kept do not depend on a map's order.
func mergeExternalIDs(cur map[string]string, patch map[string]*string) (out map[string]string, cut bool) {
	if len(patch) == 0 {
		return cur, false
	}
	out = make(map[string]string, len(cur)+len(patch))
	size := 0
	for k, v := range cur {
		out[k] = v
		size += externalIDSize(k, v)
	}
	names := make([]string, 0, len(patch))
	for k, v := range patch {
		if v == nil {
			if old, ok := out[k]; ok {
				size -= externalIDSize(k, old)
				delete(out, k)
			}
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := *patch[k]
		grown := size + externalIDSize(k, v)
		if old, ok := out[k]; ok {
			grown -= externalIDSize(k, old)
		}
		if grown > MaxExternalIDsBytes && grown > size {
			cut = true
			continue
		}
		out[k], size = v, grown
	}
	if len(out) == 0 {
		return nil, cut
	}
	return out, cut
}

// MaxExternalIDsBytes bounds a Thing's merged external_ids, each counted
// as its key and value and six bytes (about its JSON), for the reason
// attrs have MaxAttrsBytes: every patch is bounded, their sum was not.
// An id left out sets ops.TruncatedAttr in the attrs.
const MaxExternalIDsBytes = 64 << 10

func externalIDSize(k, v string) int { return len(k) + len(v) + 6 }
