// Package fold is the projector's pure, deterministic fold: (snapshot,
// operation) → snapshot. It reads no clock and no state beyond its
// arguments, so folding the same log always yields byte-identical
// snapshots (see EncodeEvent), which is what makes projections disposable.
package fold

import (
	"github.com/go-json-experiment/json/jsontext"
)

// Event is the current state of an Event: every field of spec section 4
// after the last folded operation. Its JSON form (AppendEventJSON) is what
// /event/get answers; the store keeps the compact binary form
// (EncodeEvent). A snapshot is never modified once built: the fold makes
// a new one, sharing what did not change.
type Event struct {
	ChannelID   string         `json:"channel_id"`
	EventID     string         `json:"event_id"`
	ThingID     string         `json:"thing_id,omitempty"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Status      string         `json:"status"`
	Message     string         `json:"message"`
	Severity    string         `json:"severity"`
	State       string         `json:"state"` // ONGOING | CLOSED
	EventTime   int64          `json:"event_time"`
	StartedAt   int64          `json:"started_at"`
	EndedAt     *int64         `json:"ended_at,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	Images      []string       `json:"images,omitempty"`
	Attrs       Attrs          `json:"attrs"`
	Metadata    jsontext.Value `json:"metadata,omitzero"`
	Ciphertext  string         `json:"ciphertext,omitempty"`
	// attrsCounted is what Attrs count towards MaxAttrsBytes plus one, 0
	// when not counted (a snapshot decoded): no part of the snapshot's
	// encoding or of its equality to a rebuilt one.
	attrsCounted int
	// Deadline (ms) is when the gateway closes the open event with status
	// timed_out unless another operation comes first (integrations only).
	Deadline  *int64 `json:"deadline,omitempty"`
	CreatedAt int64  `json:"created_at"` // accepted_at of the first folded operation
	UpdatedAt int64  `json:"updated_at"` // accepted_at of the last
	Version   uint64 `json:"version"`    // number of operations folded
	LastSeq   uint64 `json:"last_seq"`
	LastOpID  string `json:"last_op_id"`
}

// Thing is the current state of a Thing: every field of spec section 5.
type Thing struct {
	ChannelID     string            `json:"channel_id"`
	ThingID       string            `json:"thing_id"`
	Title         string            `json:"title,omitempty"`
	Description   string            `json:"description,omitempty"`
	State         string            `json:"state"` // active | archived | deleted
	Tags          []string          `json:"tags,omitempty"`
	PrimaryImage  string            `json:"primary_image,omitempty"`
	Images        []string          `json:"images,omitempty"`
	Attrs         Attrs             `json:"attrs"`
	attrsCounted  int               // as Event's
	Metadata      jsontext.Value    `json:"metadata,omitzero"`
	ExternalIDs   map[string]string `json:"external_ids,omitempty"`
	LocationType  string            `json:"location_type,omitempty"`
	LocationValue string            `json:"location_value,omitempty"`
	Ciphertext    string            `json:"ciphertext,omitempty"`
	CreatedAt     int64             `json:"created_at"`  // the thing's created_at (defaults to observed_at)
	ObservedAt    int64             `json:"observed_at"` // of the last operation
	ArchivedAt    *int64            `json:"archived_at,omitempty"`
	DeletedAt     *int64            `json:"deleted_at,omitempty"`
	UpdatedAt     int64             `json:"updated_at"` // accepted_at of the last operation
	Version       uint64            `json:"version"`
	LastSeq       uint64            `json:"last_seq"`
	LastOpID      string            `json:"last_op_id"`
}

// JSON returns the JSON of a snapshot (*Event or *Thing), as the read API
// answers it: members in declaration order, attrs and external_ids sorted
// by name. Equal snapshots give equal bytes.
func JSON(snapshot any) ([]byte, error) {
	switch s := snapshot.(type) {
	case *Event:
		return AppendEventJSON(nil, s)
	case *Thing:
		return AppendThingJSON(nil, s)
	case Attrs:
		return s.appendJSON(nil)
	}
	panic("fold.JSON: not a snapshot")
}
