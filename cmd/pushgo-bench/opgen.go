package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Shape of the populated log: genEntities events and as many things across
// genChannels channels; every entity is created first, then updated at
// random, and the last operations close a fifth of the events and archive
// a fifth of the things.
const (
	genChannels = 10
	genEntities = 5000 // of each kind
	genTail     = 2 * genEntities / 5
	minOps      = 2*genEntities + genTail + 8000
)

// opGen generates the operations of the populate phase in log order, one
// at a time (a million envelopes are not held in memory), encoded exactly
// as ingest's oplog.Writer encodes them: the payload is the JSON of an
// ops.EventPayload or ops.ThingPayload (deterministic), the envelope the
// JSON of an ops.Envelope, on streams.OpSubject with the Pushgo-Op,
// Pushgo-Op-Id and Pushgo-Body-Hash headers.
type opGen struct {
	total    int
	i        int
	channels []string
	events   []genEntity
	things   []genEntity
	rng      *rand.Rand
	base     int64 // accepted_at of the first operation, ms
	attrs    []byte
	text     []byte
}

type genEntity struct {
	ch      int
	id      string
	subject string
	n       int // operations so far
}

// genMsg is one generated operation.
type genMsg struct {
	subject  string
	op       ops.Name
	opID     string
	bodyHash string
	data     []byte
}

func newOpGen(total int, seed uint64, base int64) *opGen {
	g := &opGen{total: total, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), base: base}
	for range genChannels {
		g.channels = append(g.channels, ids.NewChannelID())
	}
	mk := func(op ops.Name, kind ops.Kind, i int) genEntity {
		ch := g.channels[i%genChannels]
		// The id ingest derives for a create with a generated op_id.
		id := ids.DeriveEntityID(ch, string(op), ids.NewOpID())
		return genEntity{ch: i % genChannels, id: id, subject: streams.OpSubject(ch, kind, id)}
	}
	g.events, g.things = make([]genEntity, genEntities), make([]genEntity, genEntities)
	for i := range genEntities {
		g.events[i] = mk(ops.EventCreate, ops.KindEvent, i)
		g.things[i] = mk(ops.ThingCreate, ops.KindThing, i)
	}
	return g
}

// next returns the next operation, or ok false after the last.
func (g *opGen) next() (m genMsg, ok bool, err error) {
	if g.i >= g.total {
		return genMsg{}, false, nil
	}
	i := g.i
	g.i++
	ms := g.base + int64(i)
	creates, tailFrom := 2*genEntities, g.total-genTail
	var e *genEntity
	var payload any
	switch {
	case i < creates:
		if i%2 == 0 {
			e = &g.events[i/2]
			m.op, payload = ops.EventCreate, g.eventCreate(e, ms)
		} else {
			e = &g.things[i/2]
			m.op, payload = ops.ThingCreate, g.thingCreate(e, ms)
		}
	case i >= tailFrom:
		j := (i - tailFrom) / 2
		if (i-tailFrom)%2 == 0 {
			e = &g.events[j]
			m.op, payload = ops.EventClose, g.eventClose(e, ms)
		} else {
			e = &g.things[j]
			m.op, payload = ops.ThingArchive, g.thingArchive(e, ms)
		}
	default:
		if g.rng.IntN(2) == 0 {
			e = &g.events[g.rng.IntN(genEntities)]
			m.op, payload = ops.EventUpdate, g.eventUpdate(e, ms)
		} else {
			e = &g.things[g.rng.IntN(genEntities)]
			m.op, payload = ops.ThingUpdate, g.thingUpdate(e, ms)
		}
	}
	e.n++
	p, err := json.Marshal(payload, json.Deterministic(true))
	if err != nil {
		return genMsg{}, false, fmt.Errorf("payload: %w", err)
	}
	m.subject, m.opID = e.subject, ids.NewOpID()
	// The body hash is the request's hash in ingest; any 64 hex digits
	// that differ per operation serve the fold the same.
	h := sha256.Sum256(p)
	m.bodyHash = hex.EncodeToString(h[:])
	m.data, err = json.Marshal(ops.Envelope{
		V: ops.EnvelopeVersion, Op: m.op, ChannelID: g.channels[e.ch], OpID: m.opID, EntityID: e.id,
		AcceptedAt: ms, BodyHash: m.bodyHash, Payload: p,
	})
	if err != nil {
		return genMsg{}, false, fmt.Errorf("envelope: %w", err)
	}
	return m, true, nil
}

// msg is m as ingest publishes it.
func (m genMsg) msg() *nats.Msg {
	nm := nats.NewMsg(m.subject)
	nm.Data = m.data
	nm.Header.Set(streams.HeaderOp, string(m.op))
	nm.Header.Set(streams.HeaderOpID, m.opID)
	nm.Header.Set(streams.HeaderBodyHash, m.bodyHash)
	return nm
}

// jsonValue is b as a JSON value. b may be the scratch buffer: the payload
// is marshalled before the buffer is reused.
func jsonValue(b []byte) jsontext.Value { return jsontext.Value(b) }

func hostName(e *genEntity) string { return "host-" + e.id[:6] }

func (g *opGen) eventCreate(e *genEntity, ms int64) *ops.EventPayload {
	a := append(g.attrs[:0], `{"host":"`...)
	a = append(a, hostName(e)...)
	a = append(a, `","job":{"kind":"backup","retries":0}}`...)
	g.attrs = a
	return &ops.EventPayload{EventID: e.id, Title: "nightly backup of " + hostName(e), Status: "running",
		Message: "started", Severity: ops.SeverityNormal, EventTime: ms, StartedAt: &ms,
		Tags: []string{"backup", "nightly"}, Attrs: jsonValue(a)}
}

func (g *opGen) eventUpdate(e *genEntity, ms int64) *ops.EventPayload {
	step := e.n
	a := append(g.attrs[:0], `{"step":`...)
	a = strconv.AppendInt(a, int64(step), 10)
	switch {
	case step%7 == 0:
		a = append(a, `,"last_error":null`...)
	case step%5 == 0:
		a = append(a, `,"job":{"retries":`...)
		a = strconv.AppendInt(a, int64(step/5), 10)
		a = append(a, `}`...)
	}
	a = append(a, `,"progress":{"done":`...)
	a = strconv.AppendInt(a, int64(step%100), 10)
	a = append(a, `}}`...)
	g.attrs = a
	t := append(g.text[:0], "step "...)
	t = strconv.AppendInt(t, int64(step), 10)
	t = append(t, ": copied "...)
	t = strconv.AppendInt(t, int64(g.rng.IntN(100000)), 10)
	t = append(t, " files"...)
	g.text = t
	sev := ops.SeverityNormal
	if g.rng.IntN(10) == 0 {
		sev = ops.SeverityHigh
	}
	return &ops.EventPayload{EventID: e.id, Status: "running", Message: string(t), Severity: sev,
		EventTime: ms, Attrs: jsonValue(a)}
}

func (g *opGen) eventClose(e *genEntity, ms int64) *ops.EventPayload {
	return &ops.EventPayload{EventID: e.id, Status: "done", Message: "finished after " + strconv.Itoa(e.n) + " steps",
		Severity: ops.SeverityNormal, EventTime: ms, EndedAt: &ms,
		Attrs: jsonValue([]byte(`{"result":"ok","progress":{"done":100}}`))}
}

func (g *opGen) thingCreate(e *genEntity, ms int64) *ops.ThingPayload {
	serial := "SN-" + e.id[:12]
	return &ops.ThingPayload{ThingID: e.id, Title: "server " + hostName(e), Description: "rack 3, row B",
		Tags: []string{"server", "rack-3"}, ObservedAt: ms, CreatedAt: &ms,
		ExternalIDs: map[string]*string{"serial": &serial},
		Attrs:       jsonValue([]byte(`{"model":"r740","cpu_pct":0,"temp_c":30,"net":{"rx_mbps":0,"tx_mbps":0}}`))}
}

func (g *opGen) thingUpdate(e *genEntity, ms int64) *ops.ThingPayload {
	a := append(g.attrs[:0], `{"cpu_pct":`...)
	a = strconv.AppendInt(a, int64(g.rng.IntN(100)), 10)
	a = append(a, `,"temp_c":`...)
	a = strconv.AppendInt(a, int64(30+g.rng.IntN(50)), 10)
	a = append(a, `,"net":{"rx_mbps":`...)
	a = strconv.AppendInt(a, int64(g.rng.IntN(1000)), 10)
	a = append(a, `,"tx_mbps":`...)
	a = strconv.AppendInt(a, int64(g.rng.IntN(1000)), 10)
	a = append(a, '}')
	if e.n%10 == 0 {
		a = append(a, `,"status":"degraded"`...)
	} else if e.n%10 == 1 {
		a = append(a, `,"status":null`...)
	}
	a = append(a, '}')
	g.attrs = a
	return &ops.ThingPayload{ThingID: e.id, ObservedAt: ms, Attrs: jsonValue(a)}
}

func (g *opGen) thingArchive(e *genEntity, ms int64) *ops.ThingPayload {
	return &ops.ThingPayload{ThingID: e.id, ObservedAt: ms, Description: "decommissioned"}
}
