package projector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
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
// make bench's, of 200,000 operations (FOLD_N=<n> for another length; a
// million shows what compactions cost at make bench's size). cpu-ns/op is the process's CPU per operation, Pebble's
// background work included.
func BenchmarkFold(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("FOLD_N")); err == nil {
		n = v
	}
	log := benchLog(n)
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

// startProfile writes a CPU profile to path until the returned stop (or
// pprof.StopCPUProfile) is called.
func startProfile(b *testing.B, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// BenchmarkFoldFromLog measures what make bench's fold row measures, at a
// smaller scale: a real embedded broker holding 200,000 operations shaped
// like its log, read once by a bare ordered consumer (raw) and folded by a
// fresh projector on disk (fold), one after the other, b.N times. It
// reports both rates, their ratio and the fold's CPU per operation;
// FOLD_CPUPROFILE=<file> profiles the (first) fold.
func BenchmarkFoldFromLog(b *testing.B) {
	const n = 200_000
	log := benchLog(n)
	br := brokertest.Start(b)
	js, err := jetstream.New(br.NC, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range log {
		if _, err := js.PublishAsync(e.subject, e.data, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.ResetTimer()
	for range b.N {
		// raw: count the log with an ordered consumer.
		began := time.Now()
		cons, err := br.JS.OrderedConsumer(ctx, streams.Ops, jetstream.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		count := 0
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if count++; count == n {
				close(done)
			}
		}, jetstream.PullMaxMessages(2*1000))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		raw := time.Since(began)
		cc.Stop()

		if path := os.Getenv("FOLD_CPUPROFILE"); path != "" {
			stop := startProfile(b, path)
			defer stop()
		}
		cpu0 := cpuTime()
		began = time.Now()
		p, err := projector.Start(ctx, br.NC, projector.Config{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err = p.WaitApplied(wctx, uint64(n))
		cancel()
		took, cpu := time.Since(began), cpuTime()-cpu0
		pprof.StopCPUProfile()
		if cerr := p.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(n/raw.Seconds(), "raw-ops/s")
		b.ReportMetric(n/took.Seconds(), "fold-ops/s")
		b.ReportMetric(raw.Seconds()/took.Seconds(), "ratio")
		b.ReportMetric(float64(cpu)/n, "fold-cpu-ns/op")
	}
}
