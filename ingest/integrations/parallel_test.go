package integrations

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgo/gateway/schemas/apierr"
)

// each calls fn once per index, never more than limit at once, and answers
// the first error; a single call gets the caller's context.
func TestLanesEach(t *testing.T) {
	l := testLanes(t, maxLanes, slog.New(slog.DiscardHandler))
	for _, n := range []int{0, 1, 2, 40} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int32
		aerr := l.each(context.Background(), n, 4, func(ctx context.Context, i int) *apierr.Error {
			raisePeak(&peak, running.Add(1))
			time.Sleep(time.Millisecond) // long enough for lanes beyond the limit, if started, to run meanwhile
			running.Add(-1)
			mu.Lock()
			seen[i]++
			mu.Unlock()
			return nil
		})
		if aerr != nil || len(seen) != n || peak.Load() > 4 {
			t.Fatalf("n=%d: %v, seen %v, peak %d", n, aerr, seen, peak.Load())
		}
		for i, c := range seen {
			if c != 1 || i < 0 || i >= n {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
	}
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "caller")
	want := apierr.New(apierr.AppendUnavailable)
	caller := goroutineID()
	got := l.each(ctx, 1, 4, func(ctx context.Context, i int) *apierr.Error {
		if ctx.Value(key{}) != "caller" || i != 0 || goroutineID() != caller {
			t.Errorf("single call: ctx %v, i %d, on goroutine %d, want the caller's %d", ctx, i, goroutineID(), caller)
		}
		return want
	})
	if got != want {
		t.Fatalf("single call answered %v, want %v", got, want)
	}
	var called []int
	if got := l.each(ctx, 3, 1, func(ctx context.Context, i int) *apierr.Error {
		called = append(called, i)
		if i == 1 {
			return want
		}
		return nil
	}); got != want {
		t.Fatalf("three calls answered %v, want the second's error", got)
	}
	if !slices.Equal(called, []int{0, 1}) {
		t.Fatalf("one at a time, the second failing: called %v, want [0 1] (nothing starts after a failure)", called)
	}
	// The first error cancels the calls still running and is the answer.
	var cancelled atomic.Int32
	started := make(chan struct{}, 3)
	got = l.each(ctx, 4, 4, func(ctx context.Context, i int) *apierr.Error {
		if i == 3 {
			for range 3 {
				<-started
			}
			return want
		}
		started <- struct{}{}
		select {
		case <-ctx.Done():
			cancelled.Add(1)
		case <-time.After(10 * time.Second):
		}
		return nil
	})
	if got != want || cancelled.Load() != 3 {
		t.Fatalf("a failure among four: answered %v with %d cancelled, want its error and the other three cancelled", got, cancelled.Load())
	}
	// The caller's context ends between calls: the calls never made are
	// no success (a request answered 200 listing reports never recorded).
	gone, leave := context.WithCancel(ctx)
	made := 0
	got = l.each(gone, 5, 1, func(ctx context.Context, i int) *apierr.Error {
		made++
		if i == 1 {
			leave()
		}
		return nil
	})
	if got == nil || got.Code != apierr.AppendUnavailable || made != 2 {
		t.Fatalf("the caller gone after 2 of 5 calls: answered %v after %d calls, want append_unavailable after 2", got, made)
	}
}

// A request's lanes are the goroutines of the request before it: they
// outlive it, waiting for the next one's work, and keep their grown stacks.
func TestLanesOutliveARequest(t *testing.T) {
	l := testLanes(t, maxLanes, slog.New(slog.DiscardHandler))
	const n = 8
	run := func() []uint64 {
		caller := goroutineID()
		var ran goroutines
		all := newMeeting(t, n)
		if aerr := l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			all.arrive() // every lane takes one index
			ran.add(goroutineID())
			return nil
		}); aerr != nil {
			t.Fatal(aerr)
		}
		return slices.DeleteFunc(ran.sorted(), func(id uint64) bool { return id == caller })
	}
	first := run()
	if len(first) != n-1 {
		t.Fatalf("first request ran on %d goroutines beside the caller, want %d", len(first), n-1)
	}
	waitIdleLanes(t, first, n-1)
	if second := run(); !slices.Equal(first, second) {
		t.Fatalf("the second request's lanes %v are not the first's %v", second, first)
	}
	if live := l.live.Load(); live != n-1 {
		t.Fatalf("%d lanes live after two requests, want %d", live, n-1)
	}
}

// A panic in a call on a lane is logged at once, while another call still
// holds the request up, and is raised again on the caller's goroutine once
// the other calls have returned; the lanes go on serving.
func TestLanePanicReachesTheCaller(t *testing.T) {
	logged := make(chan string, 16)
	l := testLanes(t, maxLanes, slog.New(slog.NewTextHandler(chanWriter(logged), nil)))
	const n = 4
	caller := goroutineID()
	var returned atomic.Int32
	var lanes goroutines
	recovered := func() (v any) {
		defer func() { v = recover() }()
		all := newMeeting(t, n)
		var once sync.Once
		_ = l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			all.arrive()
			if id := goroutineID(); id != caller {
				lanes.add(id)
				panicked := false
				once.Do(func() { panicked = true })
				if panicked {
					panic("boom")
				}
			}
			if goroutineID() == caller {
				// Held until the panic is logged: a call that holds the
				// request up must not hide it.
				select {
				case line := <-logged:
					if !strings.Contains(line, "panic in a report") || !strings.Contains(line, "boom") || !strings.Contains(line, "stack=") {
						t.Errorf("logged %q, want the panic with its stack", line)
					}
				case <-time.After(10 * time.Second):
					t.Error("the panic was not logged while another call of its request still ran")
				}
			}
			returned.Add(1)
			return nil
		})
		return nil
	}()
	var p *lanePanic
	if err, ok := recovered.(error); !ok || !errors.As(err, &p) || p.value != "boom" || !bytes.Contains(p.stack, []byte("integrations.(*lanes).loop")) {
		t.Fatalf("recovered %v, want the lane's panic with the lane's stack", recovered)
	}
	if returned.Load() != n-1 {
		t.Fatalf("%d of the other calls had returned when the panic reached the caller, want %d", returned.Load(), n-1)
	}
	waitIdleLanes(t, lanes.sorted(), n-1)
	if aerr := l.each(context.Background(), 8, 8, func(context.Context, int) *apierr.Error { return nil }); aerr != nil {
		t.Fatal(aerr)
	}
}

// A panic in the call on the caller's own goroutine also waits for the
// other calls before it leaves each: the request's state (its results, its
// in-flight place) is not released under calls still running.
func TestCallerPanicWaitsForTheLanes(t *testing.T) {
	l := testLanes(t, maxLanes, slog.New(slog.DiscardHandler))
	const n = 4
	var atGate, returned atomic.Int32
	gate := make(chan struct{})
	got := make(chan [2]any, 1) // the panic, and how many other calls had returned when it arrived
	go func() {
		caller := goroutineID()
		defer func() { got <- [2]any{recover(), returned.Load()} }()
		all := newMeeting(t, n)
		_ = l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			all.arrive()
			if goroutineID() == caller {
				panic("caller's boom")
			}
			<-ctx.Done()
			atGate.Add(1)
			<-gate
			returned.Add(1)
			return nil
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); atGate.Load() != n-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the other calls cancelled after 10 s, want %d", atGate.Load(), n-1)
		}
	}
	close(gate)
	var r [2]any
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("each had not returned 10 s after its other calls were let go")
	}
	var p *lanePanic
	if err, ok := r[0].(error); !ok || !errors.As(err, &p) || p.value != "caller's boom" {
		t.Fatalf("recovered %v, want the caller's panic", r[0])
	}
	if r[1] != int32(n-1) {
		t.Fatalf("the panic left each when %v of the other calls had returned, want %d", r[1], n-1)
	}
}

// Past max lanes, a request's calls still run at once, on goroutines of
// their own, and no more than max lanes are kept.
func TestLanesPastTheirBound(t *testing.T) {
	l := testLanes(t, 2, slog.New(slog.DiscardHandler))
	const n = 8
	all := newMeeting(t, n)
	var peak atomic.Int32
	var ran goroutines
	if aerr := l.each(context.Background(), n, n, func(context.Context, int) *apierr.Error {
		all.arrive() // every call at once: eight goroutines
		raisePeak(&peak, l.live.Load())
		ran.add(goroutineID())
		return nil
	}); aerr != nil {
		t.Fatal(aerr)
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d lanes live at once, want at most 2", p)
	}
	waitIdleLanes(t, ran.sorted(), 2)
	if live := l.live.Load(); live != 2 {
		t.Fatalf("%d lanes kept, want 2", live)
	}
}

// Close ends the idle lanes; requests after it still run every call.
func TestLanesClose(t *testing.T) {
	l := newLanes(maxLanes, slog.New(slog.DiscardHandler))
	if aerr := l.each(context.Background(), 8, 8, func(context.Context, int) *apierr.Error { return nil }); aerr != nil {
		t.Fatal(aerr)
	}
	if l.live.Load() == 0 {
		t.Fatal("no lane live after a request of 8 calls")
	}
	l.Close()
	l.Close()
	for deadline := time.Now().Add(10 * time.Second); l.live.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d lanes live 10 s after Close", l.live.Load())
		}
	}
	var calls atomic.Int32
	if aerr := l.each(context.Background(), 8, 8, func(context.Context, int) *apierr.Error { calls.Add(1); return nil }); aerr != nil || calls.Load() != 8 {
		t.Fatalf("after Close: %v, %d calls, want 8", aerr, calls.Load())
	}
}

// testLanes is newLanes closed at the test's end.
func testLanes(t *testing.T, max int, log *slog.Logger) *lanes {
	l := newLanes(max, log)
	t.Cleanup(l.Close)
	return l
}

// meeting lets n calls wait for one another, for at most 10 s: a call that
// waits longer fails the test and goes on (rather than hanging it).
type meeting struct {
	t    *testing.T
	wg   sync.WaitGroup
	done chan struct{}
}

func newMeeting(t *testing.T, n int) *meeting {
	m := &meeting{t: t, done: make(chan struct{})}
	m.wg.Add(n)
	go func() { m.wg.Wait(); close(m.done) }()
	return m
}

func (m *meeting) arrive() {
	m.wg.Done()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.t.Error("the calls did not all run at once within 10 s")
	}
}

// raisePeak makes peak at least v.
func raisePeak(peak *atomic.Int32, v int32) {
	for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
	}
}

// goroutines collects the goroutines that calls ran on.
type goroutines struct {
	mu  sync.Mutex
	ids []uint64
}

func (g *goroutines) add(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ids = append(g.ids, id)
}

// sorted is the ids collected, in order.
func (g *goroutines) sorted() []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(slices.Values(g.ids))
}

// chanWriter sends each write (a log record) to its channel.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// goroutineID is the running goroutine's number, from its stack's header
// ("goroutine 12 [running]:").
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// waitIdleLanes waits until at least n of the goroutines ids are lanes
// waiting for work: blocked in a select in lanes.loop ("goroutine 12
// [select]:" or "[select, 2 minutes]:").
func waitIdleLanes(t *testing.T, ids []uint64, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		idle := 0
		for g := range bytes.SplitSeq(buf[:runtime.Stack(buf, true)], []byte("\n\n")) {
			for _, id := range ids {
				if bytes.HasPrefix(g, []byte("goroutine "+strconv.FormatUint(id, 10)+" [select")) && bytes.Contains(g, []byte("integrations.(*lanes).loop")) {
					idle++
				}
			}
		}
		if idle >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the lanes %v idle after 10 s, want %d", idle, ids, n)
		}
	}
}

// BenchmarkEachDeepCalls runs a 64-call request whose calls use 16 KiB of
// stack each (as a report does deep in the JSON encoder) on the lanes, and
// on a fresh goroutine per lane as before 5 December: the difference is
// the stacks grown and copied again each request.
func BenchmarkEachDeepCalls(b *testing.B) {
	const n = 64
	deep := func(context.Context, int) *apierr.Error { stackDeep(16 << 10); return nil }
	b.Run("lanes", func(b *testing.B) {
		l := newLanes(maxLanes, slog.New(slog.DiscardHandler))
		defer l.Close()
		for b.Loop() {
			_ = l.each(context.Background(), n, n, deep)
		}
	})
	b.Run("fresh goroutines", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { _ = deep(context.Background(), i) })
			}
			wg.Wait()
		}
	})
}

// stackDeep uses about size bytes of stack.
//
//go:noinline
func stackDeep(size int) byte {
	var frame [1024]byte
	frame[size%1024] = 1
	if size <= 1024 {
		return frame[0]
	}
	return stackDeep(size-1024) + frame[1]
}
