package e2e

// Helpers of the read-side tests (projector_*_test.go): split deployments
// (an ingest with the broker, projectors connected to it), the projection
// store as the tests open it after a graceful stop, a randomized workload
// with its own bookkeeping of what every entity must look like, and a
// Server-Sent Events reader.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/projector/store"
)

// ---------------------------------------------------------------------------
// Split deployments

// startIngest starts `PUSHGO_TARGET=ingest` with the embedded broker
// listening on a free loopback port (g.natsURL).
func startIngest(t *testing.T) *gateway {
	t.Helper()
	return startGateway(t, gwConfig{DataDir: t.TempDir(), Target: "ingest"})
}

// startProjector starts `PUSHGO_TARGET=projector` on dataDir, connected to
// the broker of ingest a. It does not wait: a projector has no HTTP; use
// waitServed or waitApplied through a.
func startProjector(t *testing.T, a *gateway, dataDir string, env ...string) *gateway {
	t.Helper()
	return startGateway(t, gwConfig{DataDir: dataDir, Target: "projector", NATSURL: a.natsURL, Env: env})
}

// projectionDir is where a process keeps its Pebble projection.
func projectionDir(dataDir string) string { return filepath.Join(dataDir, "projection") }

// readyStatus is one answer of GET /readyz.
type readyStatus struct {
	Status  int
	Applied uint64
	Lag     uint64
	// ReceiptsApplied is the projector's last PUSHGO_RECEIPTS sequence
	// folded: the process's own, or the one that answered an ingest
	// replica's status request.
	ReceiptsApplied uint64
	Raw             string
}

func probeReady(ctx context.Context, a *gateway) (readyStatus, error) {
	r, err := a.Do(ctx, http.MethodGet, "/readyz", nil, nil)
	if err != nil {
		return readyStatus{}, err
	}
	st := readyStatus{Status: r.Status, Raw: r.String()}
	if r.Status != http.StatusOK {
		return st, nil
	}
	dsts := map[string]*uint64{"projector_applied": &st.Applied, "projector_lag": &st.Lag,
		"projector_receipts_applied": &st.ReceiptsApplied}
	data, err := okData(r, "projector_applied", "projector_lag", "projector_receipts_applied", "ready")
	if err != nil {
		return st, err
	}
	for key, dst := range dsts {
		n, ok := data[key].(json.Number)
		if !ok {
			return st, fmt.Errorf("readyz: %s is %T, want a number: %s", key, data[key], r)
		}
		v, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil {
			return st, fmt.Errorf("readyz: %s = %s: %v", key, n, err)
		}
		*dst = v
	}
	return st, nil
}

// failIfExited fails the test when one of the watched processes has ended.
func failIfExited(t *testing.T, watch []*gateway) {
	t.Helper()
	for _, p := range watch {
		if p.exited() {
			t.Fatalf("%s exited unexpectedly: %v", p.name, p.waitErr)
		}
	}
}

// waitServed polls a's /readyz until it answers 200, which needs some
// projector to answer its status request.
func waitServed(t *testing.T, a *gateway, bound time.Duration, watch ...*gateway) readyStatus {
	t.Helper()
	return waitReady(t, a, bound, "/readyz not 200", func(st readyStatus) bool { return st.Status == http.StatusOK }, watch...)
}

// waitReady polls a's /readyz until done accepts its answer, and fails the
// test with what (and the last answer) after bound, or when a or one of
// watch has exited.
func waitReady(t *testing.T, a *gateway, bound time.Duration, what string, done func(readyStatus) bool, watch ...*gateway) readyStatus {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		failIfExited(t, append(watch, a))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := probeReady(ctx, a)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case done(st):
			return st
		default:
			last = st.Raw
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s within %s (last: %s)", a.name, what, bound, last)
	return readyStatus{}
}

// waitApplied polls a's /readyz until `consecutive` answers in a row report
// projector_applied == seq. Each answer comes from whichever projector the
// broker picks, so with n replicas a run of k answers all from caught-up
// replicas while one still lags has probability at most ((n-1)/n)^k.
func waitApplied(t *testing.T, a *gateway, seq uint64, consecutive int, bound time.Duration, watch ...*gateway) {
	t.Helper()
	deadline := time.Now().Add(bound)
	hits := 0
	var last string
	for time.Now().Before(deadline) {
		failIfExited(t, append(watch, a))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := probeReady(ctx, a)
		cancel()
		switch {
		case err != nil:
			hits, last = 0, err.Error()
		case st.Status != http.StatusOK:
			hits, last = 0, st.Raw
		case st.Applied > seq:
			t.Fatalf("readyz reports projector_applied %d beyond the stream's last sequence %d: %s", st.Applied, seq, st.Raw)
		case st.Applied == seq:
			if st.Lag != 0 {
				t.Errorf("readyz: projector_applied %d equals the last sequence but projector_lag is %d: %s", st.Applied, st.Lag, st.Raw)
			}
			if hits++; hits >= consecutive {
				return
			}
			continue
		default:
			hits, last = 0, st.Raw
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("projectors did not reach sequence %d (%d consecutive answers) within %s; last: %s", seq, consecutive, bound, last)
}

// waitLog waits until p has written substr to its output.
func waitLog(t *testing.T, p *gateway, substr string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if strings.Contains(p.output.String(), substr) {
			return
		}
		failIfExited(t, []*gateway{p})
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not log %q within %s", p.name, substr, bound)
}

// streamLastSeq reads PUSHGO_OPS's last sequence through natsURL.
func streamLastSeq(t *testing.T, natsURL string) uint64 {
	t.Helper()
	return lastSeqOf(t, natsURL, opsStream)
}

// lastSeqOf is stream's last sequence.
func lastSeqOf(t *testing.T, natsURL, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := dialJS(t, natsURL).streamState(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return st.LastSeq
}

// waitReceiptsApplied waits until projector process p reports on /readyz
// that its receipts fold reached seq.
func waitReceiptsApplied(t *testing.T, p *gateway, seq uint64, bound time.Duration) {
	t.Helper()
	waitReady(t, p, bound, fmt.Sprintf("the receipts fold not at sequence %d", seq), func(st readyStatus) bool {
		return st.Status == http.StatusOK && st.ReceiptsApplied >= seq
	})
}

// stopClean stops p with SIGTERM and fails the test unless it exits 0.
func stopClean(t *testing.T, p *gateway) {
	t.Helper()
	if err := p.terminate(); err != nil {
		t.Fatalf("%s did not stop cleanly on SIGTERM: %v", p.name, err)
	}
}

// ---------------------------------------------------------------------------
// The projection store, read after the process stopped

type kv struct{ K, V []byte }

// storeImage is what the tests compare of a projection store.
type storeImage struct {
	Dir     string
	Applied uint64
	Dump    []kv                // snapshots and indexes, key order
	History map[string][][]byte // channel -> history items, seq order
}

// openImage opens a stopped process's projection and reads it whole;
// channels are the channels whose history is read too.
func openImage(t *testing.T, dataDir string, channels []string) storeImage {
	t.Helper()
	return openImageAt(t, projectionDir(dataDir), channels)
}

// openImageAt is openImage of the projection in dir.
func openImageAt(t *testing.T, dir string, channels []string) storeImage {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("open projection %s: %v", dir, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("close projection %s: %v", dir, err)
		}
	}()
	img := storeImage{Dir: dir, History: map[string][][]byte{}}
	if img.Applied, err = st.Applied(); err != nil {
		t.Fatalf("%s: applied: %v", dir, err)
	}
	err = st.Dump(func(k, v []byte) error {
		img.Dump = append(img.Dump, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("%s: dump: %v", dir, err)
	}
	for _, ch := range channels {
		var after uint64
		for {
			page, err := st.History(ch, after, 1000, nil)
			if err != nil {
				t.Fatalf("%s: history %s after %d: %v", dir, ch, after, err)
			}
			img.History[ch] = append(img.History[ch], page.Items...)
			if !page.HasMore {
				break
			}
			after = page.NextAfter
		}
	}
	return img
}

// printableKey shows a store key with its 0x00 separators as '|' and a
// binary tail in hex.
func printableKey(k []byte) string {
	var b strings.Builder
	for _, c := range k {
		switch {
		case c == 0:
			b.WriteByte('|')
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sameImage reports every difference between two store images.
func sameImage(t *testing.T, what string, a, b storeImage) {
	t.Helper()
	if a.Applied != b.Applied {
		t.Errorf("%s: Applied() %d (%s) vs %d (%s)", what, a.Applied, a.Dir, b.Applied, b.Dir)
	}
	if len(a.Dump) != len(b.Dump) {
		t.Errorf("%s: Dump yields %d entries (%s) vs %d (%s)", what, len(a.Dump), a.Dir, len(b.Dump), b.Dir)
	}
	diffs := 0
	for i := 0; i < min(len(a.Dump), len(b.Dump)) && diffs < 5; i++ {
		x, y := a.Dump[i], b.Dump[i]
		if !bytes.Equal(x.K, y.K) {
			t.Errorf("%s: Dump entry %d: key %q vs %q", what, i, printableKey(x.K), printableKey(y.K))
			diffs++
		} else if !bytes.Equal(x.V, y.V) {
			t.Errorf("%s: Dump entry %d (key %q): value\n  %s\nvs\n  %s", what, i, printableKey(x.K), x.V, y.V)
			diffs++
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(a.History)) {
		ha, hb := a.History[ch], b.History[ch]
		if len(ha) != len(hb) {
			t.Errorf("%s: channel %s history has %d items vs %d", what, ch, len(ha), len(hb))
			continue
		}
		for i := range ha {
			if !bytes.Equal(ha[i], hb[i]) {
				t.Errorf("%s: channel %s history item %d differs:\n  %s\nvs\n  %s", what, ch, i, ha[i], hb[i])
				break
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Decoding answers

// okAny checks a success envelope and returns data, whatever its keys
// (snapshots omit their empty optional fields).
func okAny(r *apiResp) (map[string]any, error) {
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("want 200: %s", r)
	}
	env, err := envelope(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", r, err)
	}
	if string(env["success"]) != "true" { // envelope has checked there are no error members
		return nil, fmt.Errorf("not a success envelope: %s", r)
	}
	data, err := decodeObject(env["data"])
	if err != nil || data == nil {
		return nil, fmt.Errorf("data is not an object (%v): %s", err, r)
	}
	return data, nil
}

func asUint(v any) (uint64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	return u, err == nil
}

// normJSON round-trips v through encoding/json so that values built by the
// test and values decoded from an answer compare with reflect.DeepEqual.
func normJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// ---------------------------------------------------------------------------
// Bookkeeping: what every entity must look like

type chanCred struct{ ID, Password string }

// entity is the test's model of one event or thing.
type entity struct {
	Kind     string // "event" | "thing"
	ID       string
	Channel  string
	State    string // ONGOING|CLOSED, active|archived|deleted
	Version  uint64
	LastOpID string
	Title    string
	ThingID  string // events: the linked thing
	Attrs    map[string]any
}

// mergeAttrs is the contract's attrs patch (spec §1): null removes, an
// object merges key by key one level deep, a scalar replaces.
func mergeAttrs(cur, patch map[string]any) map[string]any {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			base := map[string]any{}
			if m, ok := out[k].(map[string]any); ok {
				maps.Copy(base, m)
			}
			for kk, vv := range pv {
				if vv == nil {
					delete(base, kk)
				} else {
					base[kk] = vv
				}
			}
			out[k] = base
		default:
			out[k] = v
		}
	}
	return out
}

// checkSnapshot compares a snapshot (decoded data of /thing/get, /event/get
// or a listing item) with the model.
func checkSnapshot(e *entity, snap map[string]any) error {
	idKey := e.Kind + "_id"
	var problems []string
	if snap[idKey] != e.ID {
		problems = append(problems, fmt.Sprintf("%s %v, want %s", idKey, snap[idKey], e.ID))
	}
	if snap["channel_id"] != e.Channel {
		problems = append(problems, fmt.Sprintf("channel_id %v, want %s", snap["channel_id"], e.Channel))
	}
	if snap["state"] != e.State {
		problems = append(problems, fmt.Sprintf("state %v, want %s", snap["state"], e.State))
	}
	if v, ok := asUint(snap["version"]); !ok || v != e.Version {
		problems = append(problems, fmt.Sprintf("version %v, want %d", snap["version"], e.Version))
	}
	if snap["last_op_id"] != e.LastOpID {
		problems = append(problems, fmt.Sprintf("last_op_id %v, want %s", snap["last_op_id"], e.LastOpID))
	}
	if e.Title != "" && snap["title"] != e.Title {
		problems = append(problems, fmt.Sprintf("title %v, want %s", snap["title"], e.Title))
	}
	if e.Kind == "event" && e.ThingID != "" && snap["thing_id"] != e.ThingID {
		problems = append(problems, fmt.Sprintf("thing_id %v, want %s", snap["thing_id"], e.ThingID))
	}
	if _, ok := asUint(snap["last_seq"]); !ok {
		problems = append(problems, fmt.Sprintf("last_seq %v is not a sequence number", snap["last_seq"]))
	}
	if got, want := normJSON(snap["attrs"]), normJSON(e.Attrs); !reflect.DeepEqual(got, want) {
		problems = append(problems, fmt.Sprintf("attrs %s, want %s", mustJSON(nil, got), mustJSON(nil, want)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s %s: %s", e.Kind, e.ID, strings.Join(problems, "; "))
	}
	return nil
}

// getSnapshot reads one entity through /thing/get or /event/get.
func getSnapshot(ctx context.Context, g *gateway, c chanCred, e *entity) (map[string]any, error) {
	body := mustJSON(nil, map[string]any{"channel_id": c.ID, "password": c.Password, e.Kind + "_id": e.ID})
	r, err := g.Do(ctx, http.MethodPost, "/"+e.Kind+"/get", body, nil)
	if err != nil {
		return nil, fmt.Errorf("POST /%s/get: %v", e.Kind, err)
	}
	return okAny(r)
}

// ackedOp is one write answered 200; Op is the operation's name in the
// log (event.create, thing.update, message.create, ...).
type ackedOp struct {
	OpID, Op, EntityID, Channel string
}

// ---------------------------------------------------------------------------
// A randomized workload

type workloadConfig struct {
	Name     string // op_id prefix
	Channels []chanCred
	Workers  int
	// Ops bounds each worker's operations (0: until Until).
	Ops   int
	Until time.Time
	Seed  uint64
	// Per-worker caps.
	Things, Events, Deletes, Closes int
	// FrontLoad creates every thing and event first.
	FrontLoad bool
	// Weights of the operation kinds; zero values take defaults.
	Weights map[string]int
}

// workload runs workers that each own their entities, so every operation
// is valid when sent and every answer must be 200; it keeps the model.
type workload struct {
	cfg workloadConfig
	g   *gateway

	mu     sync.Mutex
	things map[string]*entity
	events map[string]*entity
	acked  []ackedOp
	errs   []string
}

func newWorkload(g *gateway, cfg workloadConfig) *workload {
	if cfg.Weights == nil {
		cfg.Weights = map[string]int{}
	}
	for k, v := range map[string]int{
		"thing.create": 8, "thing.update": 30, "thing.archive": 4, "thing.delete": 2,
		"event.create": 8, "event.update": 30, "event.close": 5, "message": 15,
	} {
		if _, ok := cfg.Weights[k]; !ok {
			cfg.Weights[k] = v
		}
	}
	return &workload{cfg: cfg, g: g, things: map[string]*entity{}, events: map[string]*entity{}}
}

func (w *workload) credOf(id string) chanCred {
	for _, c := range w.cfg.Channels {
		if c.ID == id {
			return c
		}
	}
	panic("unknown channel " + id)
}

// run runs the workers until their quota, the deadline or ctx; it returns
// the number of acknowledged operations.
func (w *workload) run(ctx context.Context) int {
	var wg sync.WaitGroup
	for i := range w.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.worker(ctx, i)
		}()
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// ackedCount is the number of operations acknowledged so far.
func (w *workload) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// failures returns the workers' errors.
func (w *workload) failures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// randomPatch builds an attrs patch over the keys of cur: scalars set,
// keys removed with null, nested objects merged with keys removed inside.
func randomPatch(rng *rand.Rand, cur map[string]any, n int) map[string]any {
	p := map[string]any{}
	for len(p) == 0 {
		for range 1 + rng.IntN(3) {
			switch r := rng.IntN(10); {
			case r < 4:
				p[fmt.Sprintf("k%d", rng.IntN(6))] = scalar(rng, n)
			case r < 6:
				// null removal, of a key that exists when there is one
				keys := slices.Sorted(maps.Keys(cur))
				if len(keys) > 0 {
					p[keys[rng.IntN(len(keys))]] = nil
				} else {
					p[fmt.Sprintf("k%d", rng.IntN(6))] = nil
				}
			default:
				obj := map[string]any{}
				for range 1 + rng.IntN(3) {
					if rng.IntN(4) == 0 {
						obj[fmt.Sprintf("n%d", rng.IntN(4))] = nil
					} else {
						obj[fmt.Sprintf("n%d", rng.IntN(4))] = scalar(rng, n)
					}
				}
				p[fmt.Sprintf("obj%d", rng.IntN(3))] = obj
			}
		}
	}
	return p
}

func scalar(rng *rand.Rand, n int) any {
	switch rng.IntN(3) {
	case 0:
		return n*10 + rng.IntN(10)
	case 1:
		return fmt.Sprintf("v%d-%d", n, rng.IntN(100))
	default:
		return rng.IntN(2) == 0
	}
}

var severities = []string{"critical", "high", "normal", "low"}

func (w *workload) worker(ctx context.Context, id int) {
	cfg := w.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(id)))
	var things, events []*entity // this worker's entities
	deletes, closes, thingsMade, eventsMade := 0, 0, 0, 0
	now := int64(1713750000000) + int64(id)*10_000_000
	fail := func(format string, args ...any) {
		w.mu.Lock()
		w.errs = append(w.errs, fmt.Sprintf("worker %d: ", id)+fmt.Sprintf(format, args...))
		w.mu.Unlock()
	}
	pick := func(list []*entity, ok func(*entity) bool) *entity {
		var c []*entity
		for _, e := range list {
			if ok(e) {
				c = append(c, e)
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}
	isLive := func(e *entity) bool { return e.State != "deleted" }
	isActive := func(e *entity) bool { return e.State == "active" }
	isOngoing := func(e *entity) bool { return e.State == "ONGOING" }

	for n := 0; cfg.Ops == 0 || n < cfg.Ops; n++ {
		if err := ctx.Err(); err != nil {
			fail("stopped after %d operations: %v", n, err)
			return
		}
		if !cfg.Until.IsZero() && time.Now().After(cfg.Until) {
			return
		}
		now += 1 + int64(rng.IntN(1000))
		possible := map[string]bool{
			"thing.create":  thingsMade < cfg.Things,
			"thing.update":  pick(things, isLive) != nil,
			"thing.archive": pick(things, isActive) != nil,
			"thing.delete":  pick(things, isLive) != nil && deletes < cfg.Deletes,
			"event.create":  eventsMade < cfg.Events,
			"event.update":  pick(events, isOngoing) != nil,
			"event.close":   pick(events, isOngoing) != nil && closes < cfg.Closes,
			"message":       true,
		}
		var op string
		if cfg.FrontLoad && (thingsMade < cfg.Things || eventsMade < cfg.Events) {
			op = "thing.create"
			if thingsMade >= cfg.Things || (eventsMade < cfg.Events && n%2 == 1) {
				op = "event.create"
			}
		} else {
			total := 0
			for k, ok := range possible {
				if ok {
					total += cfg.Weights[k]
				}
			}
			r := rng.IntN(total)
			for _, k := range slices.Sorted(maps.Keys(possible)) {
				if !possible[k] {
					continue
				}
				if r < cfg.Weights[k] {
					op = k
					break
				}
				r -= cfg.Weights[k]
			}
		}
		opID := fmt.Sprintf("%s-w%d-%d", cfg.Name, id, n)
		var (
			target *entity // the entity the op changes (nil for creates and messages)
			ch     chanCred
			path   = "/" + strings.Replace(op, ".", "/", 1)
			body   = map[string]any{"op_id": opID}
			patch  map[string]any
			newE   *entity
		)
		switch op {
		case "thing.create":
			ch = cfg.Channels[rng.IntN(len(cfg.Channels))]
			thingsMade++
			patch = map[string]any{"temp": n, "site": map[string]any{"room": fmt.Sprintf("r%d", rng.IntN(9)), "floor": rng.IntN(5)}}
			title := fmt.Sprintf("thing %d/%d", id, n)
			body["title"], body["observed_at"], body["attrs"] = title, now, patch
			body["external_ids"] = map[string]any{"serial": fmt.Sprintf("SN-%d-%d", id, n)}
			body["location_type"], body["location_value"] = "logical", fmt.Sprintf("home/w%d", id)
			newE = &entity{Kind: "thing", Channel: ch.ID, State: "active", Title: title}
		case "event.create":
			ch = cfg.Channels[rng.IntN(len(cfg.Channels))]
			eventsMade++
			title := fmt.Sprintf("event %d/%d", id, n)
			body["title"], body["status"], body["message"] = title, "open", "started"
			body["severity"], body["event_time"] = severities[rng.IntN(4)], now
			newE = &entity{Kind: "event", Channel: ch.ID, State: "ONGOING", Title: title}
			if rng.IntN(2) == 0 {
				patch = map[string]any{"progress": 0, "job": map[string]any{"worker": id}}
				body["attrs"] = patch
			}
			if th := pick(things, func(e *entity) bool { return isLive(e) && e.Channel == ch.ID }); th != nil && rng.IntN(3) == 0 {
				body["thing_id"] = th.ID
				newE.ThingID = th.ID
			}
		case "thing.update", "thing.archive", "thing.delete":
			check := isLive
			if op == "thing.archive" {
				check = isActive
			}
			target = pick(things, check)
			ch = w.credOf(target.Channel)
			body["thing_id"], body["observed_at"] = target.ID, now
			if op != "thing.delete" || rng.IntN(2) == 0 {
				patch = randomPatch(rng, target.Attrs, n)
				body["attrs"] = patch
			}
			if op == "thing.update" && rng.IntN(4) == 0 {
				body["external_ids"] = map[string]any{"serial": nil, "mac": fmt.Sprintf("m%d", n)}
			}
			if op == "thing.update" && rng.IntN(5) == 0 {
				title := fmt.Sprintf("thing %d/%d renamed at %d", id, target.Version, n)
				body["title"] = title
			}
		case "event.update", "event.close":
			target = pick(events, isOngoing)
			ch = w.credOf(target.Channel)
			body["event_id"], body["status"], body["message"] = target.ID, "running", fmt.Sprintf("step %d", n)
			body["severity"], body["event_time"] = severities[rng.IntN(4)], now
			if op == "event.close" {
				body["status"], body["message"] = "success", "done"
			}
			if op == "event.update" || rng.IntN(2) == 0 {
				patch = randomPatch(rng, target.Attrs, n)
				body["attrs"] = patch
			}
			if rng.IntN(6) == 0 {
				body["title"] = fmt.Sprintf("event %d/%d retitled at %d", id, target.Version, n)
			}
		case "message":
			ch = cfg.Channels[rng.IntN(len(cfg.Channels))]
			body["title"], body["body"] = fmt.Sprintf("note %d/%d", id, n), "**markdown**"
			if th := pick(things, func(e *entity) bool { return isLive(e) && e.Channel == ch.ID }); th != nil && rng.IntN(2) == 0 {
				body["thing_id"], body["occurred_at"] = th.ID, now
			}
		}
		body["channel_id"], body["password"] = ch.ID, ch.Password
		r, err := w.g.Do(ctx, http.MethodPost, path, mustJSON(nil, body), nil)
		if err != nil {
			if ctx.Err() == nil {
				fail("%s %s: %v", path, opID, err)
			}
			return
		}
		data, err := okAny(r)
		if err != nil {
			fail("%s %s: %v", path, opID, err)
			return
		}
		kind := strings.SplitN(op, ".", 2)[0]
		entityID, _ := data[kind+"_id"].(string)
		if data["op_id"] != opID || entityID == "" || (target != nil && entityID != target.ID) {
			fail("%s %s: unexpected answer %s", path, opID, r)
			return
		}
		w.mu.Lock()
		logOp := op // the operation's name in the log
		if op == "message" {
			logOp = "message.create"
		}
		w.acked = append(w.acked, ackedOp{OpID: opID, Op: logOp, EntityID: entityID, Channel: ch.ID})
		switch {
		case newE != nil:
			newE.ID, newE.Version, newE.LastOpID, newE.Attrs = entityID, 1, opID, mergeAttrs(nil, patch)
			if kind == "thing" {
				things = append(things, newE)
				w.things[entityID] = newE
			} else {
				events = append(events, newE)
				w.events[entityID] = newE
			}
		case target != nil:
			target.Version++
			target.LastOpID = opID
			target.Attrs = mergeAttrs(target.Attrs, patch)
			if t, ok := body["title"].(string); ok {
				target.Title = t
			}
			switch op {
			case "thing.update":
				target.State = "active"
			case "thing.archive":
				target.State = "archived"
			case "thing.delete":
				target.State = "deleted"
				deletes++
			case "event.close":
				target.State = "CLOSED"
				closes++
			}
		}
		w.mu.Unlock()
	}
}

// entities returns the model's entities, things then events, in id order.
func (w *workload) entities() []*entity {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*entity
	for _, m := range []map[string]*entity{w.things, w.events} {
		for _, id := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[id])
		}
	}
	return out
}

// verifyReads reads every entity of the model through g and compares.
func (w *workload) verifyReads(t *testing.T, g *gateway, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := 0
	all := w.entities()
	for _, e := range all {
		snap, err := getSnapshot(ctx, g, w.credOf(e.Channel), e)
		if err == nil {
			err = checkSnapshot(e, snap)
		}
		if err != nil {
			if bad++; bad <= 5 {
				t.Errorf("%s: %v", what, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d entities read wrong", what, bad, len(all))
	}
}

// checkImageAgainstModel decodes every snapshot of a store dump and
// compares it with the model, and checks the state indexes.
func (w *workload) checkImageAgainstModel(t *testing.T, img storeImage) {
	t.Helper()
	seen := map[string]bool{}
	stateIdx := map[string]bool{}
	bad := 0
	for _, e := range img.Dump {
		parts := strings.Split(string(e.K), "\x00")
		switch parts[0] {
		case "e", "t":
			if len(parts) != 3 {
				t.Errorf("%s: snapshot key %q has %d parts", img.Dir, printableKey(e.K), len(parts))
				continue
			}
			m := w.things
			if parts[0] == "e" {
				m = w.events
			}
			model, ok := m[parts[2]]
			if !ok {
				t.Errorf("%s: snapshot %q of an entity the test never created", img.Dir, printableKey(e.K))
				continue
			}
			seen[parts[0]+parts[2]] = true
			snap, err := decodeObject(e.V)
			if err == nil {
				err = checkSnapshot(model, snap)
			}
			if err != nil {
				if bad++; bad <= 5 {
					t.Errorf("%s: %v", img.Dir, err)
				}
			}
		case "E", "T":
			if len(parts) == 4 {
				stateIdx[parts[0]+"|"+parts[1]+"|"+parts[2]+"|"+parts[3]] = true
			}
		}
	}
	for _, e := range w.entities() {
		p := "t"
		if e.Kind == "event" {
			p = "e"
		}
		if !seen[p+e.ID] {
			t.Errorf("%s: no snapshot of %s %s", img.Dir, e.Kind, e.ID)
		}
		idx := strings.ToUpper(p) + "|" + e.Channel + "|" + e.State + "|" + e.ID
		if !stateIdx[idx] {
			t.Errorf("%s: no state index entry %s", img.Dir, idx)
		}
		delete(stateIdx, idx)
	}
	for k := range stateIdx {
		t.Errorf("%s: stale state index entry %s", img.Dir, k)
	}
	if bad > 0 {
		t.Errorf("%s: %d snapshots differ from the model", img.Dir, bad)
	}
}

// ---------------------------------------------------------------------------
// Server-Sent Events

type sseEvent struct {
	ID, Event, Data string
}

// sseConn is an open GET /channel/stream.
type sseConn struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	done   chan struct{}
	err    error // why the reader stopped; read after done
	client *http.Client
}

// openSSE opens the channel stream; lastEventID "" omits the header. The
// whole stream is bounded by bound.
func openSSE(t *testing.T, g *gateway, c chanCred, lastEventID string, bound time.Duration) *sseConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/channel/stream", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("X-PushGo-Channel", c.ID)
	req.Header.Set("X-PushGo-Password", c.Password)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	if g.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.cfg.Token)
	}
	client := &http.Client{Transport: apiValidating(t, &http.Transport{})} // no client timeout: the context bounds the stream
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /channel/stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /channel/stream: %d %s (Content-Type %q), want 200 text/event-stream", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
	s := &sseConn{resp: resp, cancel: cancel, events: make(chan sseEvent, 1024), done: make(chan struct{}), client: client}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseConn) read() {
	defer close(s.done)
	defer close(s.events)
	br := bufio.NewReaderSize(s.resp.Body, 64<<10)
	var ev sseEvent
	var data []string
	has := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.err = err
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if has {
				ev.Data = strings.Join(data, "\n")
				s.events <- ev
			}
			ev, data, has = sseEvent{}, nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment (keep-alive)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		has = true
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

// next returns the next event, failing the test when none comes within
// wait or the stream ends.
func (s *sseConn) next(t *testing.T, wait time.Duration) sseEvent {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("channel stream ended: %v", s.err)
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event on the channel stream within %s", wait)
	}
	return sseEvent{}
}

// close ends the stream and waits for the reader.
func (s *sseConn) close() {
	s.cancel()
	s.resp.Body.Close()
	for range s.events {
	}
	<-s.done
	s.client.CloseIdleConnections()
}
