package reads

// EntityHead is what the write path asks of an entity the log holds no
// operation of (all aged out of PUSHGO_OPS, or purged): whether the
// projection still has its snapshot, in what state, and the sequence of
// its last operation. Decoded from the snapshot ThingGet or EventGet
// answers; LastSeq 0 when the projection has no such entity.
type EntityHead struct {
	// LastSeq is the log sequence of the entity's last operation.
	LastSeq uint64 `json:"last_seq"`
	// State is the snapshot's state: ONGOING or CLOSED for an event;
	// active, archived or deleted for a Thing.
	State string `json:"state"`
}
