package projector_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// benchEntry is one generated log entry: its subject and envelope.
type benchEntry struct {
	subject string
	data    []byte
}

// benchLog generates n operations shaped like make bench's fold phase
// (cmd/pushgo-bench/opgen.go): 10 channels, 5,000 events and 5,000 things
// created first, then updated at random with ~400-byte envelopes, random
// op_ids.
func benchLog(n int) []benchEntry {
	const channels, entities = 10, 5000
	rng := rand.New(rand.NewPCG(1, 2))
	chans := make([]string, channels)
	for i := range chans {
		chans[i] = ids.NewChannelID()
	}
	type ent struct {
		ch, id string
		n      int
	}
	events, things := make([]ent, entities), make([]ent, entities)
	for i := range entities {
		events[i] = ent{ch: chans[i%channels], id: ids.DeriveEntityID(chans[i%channels], "event.create", ids.NewOpID())}
		things[i] = ent{ch: chans[i%channels], id: ids.DeriveEntityID(chans[i%channels], "thing.create", ids.NewOpID())}
	}
	out := make([]benchEntry, 0, n)
	base := int64(1713750000000)
	for i := range n {
		ms := base + int64(i)
		var e *ent
		var op ops.Name
		var payload any
		switch {
		case i < 2*entities && i%2 == 0:
			e, op = &events[i/2], ops.EventCreate
			payload = ops.EventPayload{EventID: e.id, Title: "nightly backup of host-" + e.id[:6], Status: "running", Message: "started",
				Severity: ops.SeverityNormal, EventTime: ms, StartedAt: &ms, Tags: []string{"backup", "nightly"},
				Attrs: []byte(`{"host":"host-` + e.id[:6] + `","job":{"kind":"backup","retries":0}}`)}
		case i < 2*entities:
			e, op = &things[i/2], ops.ThingCreate
			serial := "SN-" + e.id[:12]
			payload = ops.ThingPayload{ThingID: e.id, Title: "server host-" + e.id[:6], Description: "rack 3, row B",
				Tags: []string{"server", "rack-3"}, ObservedAt: ms, CreatedAt: &ms, ExternalIDs: map[string]*string{"serial": &serial},
				Attrs: []byte(`{"model":"r740","cpu_pct":0,"temp_c":30,"net":{"rx_mbps":0,"tx_mbps":0}}`)}
		case rng.IntN(2) == 0:
			e, op = &events[rng.IntN(entities)], ops.EventUpdate
			attrs := `{"step":` + strconv.Itoa(e.n)
			if e.n%5 == 0 {
				attrs += `,"job":{"retries":` + strconv.Itoa(e.n/5) + `}`
			}
			attrs += `,"progress":{"done":` + strconv.Itoa(e.n%100) + `}}`
			payload = ops.EventPayload{EventID: e.id, Status: "running", Message: fmt.Sprintf("step %d: copied %d files", e.n, rng.IntN(100000)),
				Severity: ops.SeverityNormal, EventTime: ms, Attrs: []byte(attrs)}
		default:
			e, op = &things[rng.IntN(entities)], ops.ThingUpdate
			payload = ops.ThingPayload{ThingID: e.id, ObservedAt: ms, Attrs: []byte(fmt.Sprintf(
				`{"cpu_pct":%d,"temp_c":%d,"net":{"rx_mbps":%d,"tx_mbps":%d}}`, rng.IntN(100), 30+rng.IntN(50), rng.IntN(1000), rng.IntN(1000)))}
		}
		e.n++
		p, _ := json.Marshal(payload, json.Deterministic(true))
		env := ops.Envelope{V: ops.EnvelopeVersion, Op: op, ChannelID: e.ch, OpID: ids.NewOpID(), EntityID: e.id, AcceptedAt: ms,
			BodyHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Payload: p}
		data, _ := json.Marshal(env)
		out = append(out, benchEntry{subject: streams.OpSubject(e.ch, op.Kind(), e.id), data: data})
	}
	return out
}

// cpuTime is the process's user and system CPU time so far: the fold's
// goroutines and Pebble's (flushes, compactions) alike.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFold measures the sequential fold alone (no broker): decode,
// apply, batch, commit into a Pebble store on disk, for a log shaped like
// make bench's. cpu-ns/op is the process's CPU per operation, Pebble's
// background work included.
func BenchmarkFold(b *testing.B) {
	log := benchLog(200_000)
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetBytes(int64(len(log[len(log)-1].data)))
	cpu0 := cpuTime()
	b.ResetTimer()
	batch := s.NewBatch()
	for i := 0; i < b.N; i++ {
		e := log[i%len(log)]
		var env ops.Envelope
		if err := fold.DecodeEnvelope(e.data, &env); err != nil {
			b.Fatal(err)
		}
		if err := projector.Fold(batch, &env, e.data, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		if batch.Len() == 1000 {
			if err := batch.Commit(uint64(i + 1)); err != nil {
				b.Fatal(err)
			}
			batch = s.NewBatch()
		}
	}
	_ = batch.Commit(uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
