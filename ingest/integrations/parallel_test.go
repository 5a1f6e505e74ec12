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
	l := newLanes(maxLanes, slog.New(slog.DiscardHandler))
	defer l.Close()
	for _, n := range []int{0, 1, 2, 40} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int32
		aerr := l.each(context.Background(), n, 4, func(ctx context.Context, i int) *apierr.Error {
			raisePeak(&peak, running.Add(1))
			defer running.Add(-1)
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
	got := l.each(ctx, 1, 4, func(ctx context.Context, i int) *apierr.Error {
		if ctx.Value(key{}) != "caller" || i != 0 {
			t.Errorf("single call: ctx %v, i %d", ctx, i)
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
}

// A request's lanes are the goroutines of the request before it: they
// outlive it, waiting for the next one's work, and keep their grown stacks.
func TestLanesOutliveARequest(t *testing.T) {
	l := newLanes(maxLanes, slog.New(slog.DiscardHandler))
	defer l.Close()
	const n = 8
	run := func() (caller uint64, lanes []uint64) {
		caller = goroutineID()
		var mu sync.Mutex
		var all sync.WaitGroup
		all.Add(n)
		if aerr := l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			// Every lane takes one index: each waits until all have one.
			all.Done()
			all.Wait()
			mu.Lock()
			lanes = append(lanes, goroutineID())
			mu.Unlock()
			return nil
		}); aerr != nil {
			t.Fatal(aerr)
		}
		slices.Sort(lanes)
		return caller, slices.DeleteFunc(lanes, func(id uint64) bool { return id == caller })
	}
	_, first := run()
	if len(first) != n-1 {
		t.Fatalf("first request ran on %d goroutines beside the caller, want %d", len(first), n-1)
	}
	waitIdleLanes(t, n-1)
	_, second := run()
	if !slices.Equal(first, second) {
		t.Fatalf("the second request's lanes %v are not the first's %v", second, first)
	}
	if live := l.live.Load(); live != n-1 {
		t.Fatalf("%d lanes live after two requests, want %d", live, n-1)
	}
}

// A panic in a call on a lane is raised again on the caller's goroutine
// once the other calls have returned, and the lane goes on serving.
func TestLanePanicReachesTheCaller(t *testing.T) {
	var logged bytes.Buffer // written by the lane before the caller's wait ends
	l := newLanes(maxLanes, slog.New(slog.NewTextHandler(&logged, nil)))
	defer l.Close()
	const n = 4
	caller := goroutineID()
	var returned atomic.Int32
	recovered := func() (v any) {
		defer func() { v = recover() }()
		var all sync.WaitGroup
		all.Add(n)
		var once sync.Once
		_ = l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			all.Done()
			all.Wait()
			if goroutineID() != caller {
				once.Do(func() { panic("boom") })
			}
			returned.Add(1)
			return nil
		})
		return nil
	}()
	var p *lanePanic
	if err, ok := recovered.(error); !ok || !errors.As(err, &p) || p.value != "boom" || !bytes.Contains(p.stack, []byte("TestLanePanicReachesTheCaller")) {
		t.Fatalf("recovered %v, want the lane's panic with its stack", recovered)
	}
	if returned.Load() != n-1 {
		t.Fatalf("%d of the other calls had returned when the panic reached the caller, want %d", returned.Load(), n-1)
	}
	if out := logged.String(); !strings.Contains(out, "panic in a report") || !strings.Contains(out, "boom") {
		t.Fatalf("the panic was not logged: %q", out)
	}
	waitIdleLanes(t, n-1)
	if aerr := l.each(context.Background(), 8, 8, func(context.Context, int) *apierr.Error { return nil }); aerr != nil {
		t.Fatal(aerr)
	}
}

// A panic in the call on the caller's own goroutine also waits for the
// other calls before it leaves each: the request's state (its results, its
// in-flight place) is not released under calls still running.
func TestCallerPanicWaitsForTheLanes(t *testing.T) {
	l := newLanes(maxLanes, slog.New(slog.DiscardHandler))
	defer l.Close()
	const n = 4
	var atGate, returned atomic.Int32
	gate := make(chan struct{})
	got := make(chan [2]any, 1) // the panic, and how many other calls had returned when it arrived
	go func() {
		caller := goroutineID()
		defer func() { got <- [2]any{recover(), returned.Load()} }()
		var all sync.WaitGroup
		all.Add(n)
		_ = l.each(context.Background(), n, n, func(ctx context.Context, i int) *apierr.Error {
			all.Done()
			all.Wait()
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
	r := <-got
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
	l := newLanes(2, slog.New(slog.DiscardHandler))
	defer l.Close()
	const n = 8
	var all sync.WaitGroup
	all.Add(n)
	var peak atomic.Int32
	if aerr := l.each(context.Background(), n, n, func(context.Context, int) *apierr.Error {
		raisePeak(&peak, l.live.Load())
		all.Done()
		all.Wait() // every call at once: eight goroutines
		return nil
	}); aerr != nil {
		t.Fatal(aerr)
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d lanes live at once, want at most 2", p)
	}
	waitIdleLanes(t, 2)
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

// raisePeak makes peak at least v.
func raisePeak(peak *atomic.Int32, v int32) {
	for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
	}
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

// waitIdleLanes waits until at least n lanes wait for work: goroutines
// blocked in a select in lanes.loop.
func waitIdleLanes(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		idle := 0
		for g := range bytes.SplitSeq(buf[:runtime.Stack(buf, true)], []byte("\n\n")) {
			if bytes.Contains(g, []byte(" [select")) && bytes.Contains(g, []byte("integrations.(*lanes).loop")) {
				idle++
			}
		}
		if idle >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lanes idle after 10 s, want %d", idle, n)
		}
	}
}
