package oplog

import (
	"hash/maphash"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// entityState is what the writer knows of an entity's latest operation:
// enough to decide the lifecycle and to recognise a retried op_id.
type entityState struct {
	exists   bool
	seq      uint64 // stream sequence of the latest operation (0 if none)
	op       ops.Name
	opID     string
	bodyHash string
	// contentHash is the integration content hash of the latest operation
	// ("" for operations from the PushGo routes).
	contentHash string
	// aged marks a state read from the projection (Options.FindEntity):
	// the log holds no operation of the entity any more, so the next one
	// is appended expecting its subject empty (expectSeq 0), while seq is
	// the last operation's sequence the projection and its readers know
	// (what an update's expect_seq names).
	aged bool
}

// expectSeq is the last sequence of the entity's subject the next append
// expects: 0 (none) for a state read from the projection.
func (s entityState) expectSeq() uint64 {
	if s.aged {
		return 0
	}
	return s.seq
}

// closed reports whether the entity's lifecycle has ended.
func (s entityState) closed() bool { return s.op == ops.EventClose || s.op == ops.ThingDelete }

func stateOf(m *jetstream.RawStreamMsg) entityState {
	return entityState{
		exists:      true,
		seq:         m.Sequence,
		op:          ops.Name(m.Header.Get(streams.HeaderOp)),
		opID:        m.Header.Get(streams.HeaderOpID),
		bodyHash:    m.Header.Get(streams.HeaderBodyHash),
		contentHash: m.Header.Get(streams.HeaderContentHash),
	}
}

// stripes serialises writers of one entity inside this process and caches
// each entity's latest state. Serialising turns 64 racing writers on one
// entity into a queue instead of 64 rounds of failed compare-and-swap; the
// broker's expected-subject-sequence check still arbitrates between
// processes. The cache saves the read round trip on the hot path: a stale
// entry (another replica wrote since) costs one failed append and a re-read,
// never a wrong decision.
type stripes struct {
	seed    maphash.Seed
	perCap  int
	buckets []stripe
}

type stripe struct {
	mu    sync.Mutex // held for the whole decide-and-append of one entity
	cache map[string]entityState
}

func newStripes(n, maxEntries int) *stripes {
	s := &stripes{seed: maphash.MakeSeed(), buckets: make([]stripe, n), perCap: max(1, maxEntries/n)}
	for i := range s.buckets {
		s.buckets[i].cache = make(map[string]entityState)
	}
	return s
}

func (s *stripes) of(subject string) *stripe {
	return &s.buckets[maphash.String(s.seed, subject)%uint64(len(s.buckets))]
}

// get and put MUST be called with st.mu held.
func (st *stripe) get(subject string) (entityState, bool) {
	e, ok := st.cache[subject]
	return e, ok
}

func (st *stripe) put(subject string, e entityState, perCap int) {
	if _, ok := st.cache[subject]; !ok && len(st.cache) >= perCap {
		for k := range st.cache { // map order is random: evicts an arbitrary entry
			delete(st.cache, k)
			break
		}
	}
	st.cache[subject] = e
}

func (st *stripe) forget(subject string) { delete(st.cache, subject) }
