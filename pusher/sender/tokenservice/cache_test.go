package tokenservice_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 4, 22, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fetcher grants tok-1, tok-2, … living `life`, fails while failing is
// set, and blocks while a gate is installed.
type fetcher struct {
	clk     *clock
	life    time.Duration
	calls   atomic.Int64
	failing atomic.Bool
	project string

	mu      sync.Mutex
	gate    chan struct{} // closed to let a blocked fetch go on
	entered chan struct{} // receives once per fetch that found the gate
}

var errDown = errors.New("service down")

func (f *fetcher) fetch(ctx context.Context) (tokenservice.Token, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return tokenservice.Token{}, ctx.Err()
		}
	}
	if f.failing.Load() {
		return tokenservice.Token{}, errDown
	}
	return tokenservice.Token{Value: "tok-" + strconv.FormatInt(n, 10), ProjectID: f.project, Expiry: f.clk.Now().Add(f.life)}, nil
}

// hold makes later fetches block until the returned release is called;
// entered signals each fetch that reached the gate.
func (f *fetcher) hold() (entered <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.entered = make(chan struct{}), make(chan struct{}, 16)
	gate := f.gate
	return f.entered, func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(gate)
	}
}

func newCache(t *testing.T, life time.Duration, o tokenservice.CacheOptions) (*tokenservice.Cache, *fetcher, *clock) {
	t.Helper()
	clk := newClock()
	f := &fetcher{clk: clk, life: life}
	o.Now = clk.Now
	c, err := tokenservice.NewCache(f.fetch, o)
	if err != nil {
		t.Fatal(err)
	}
	return c, f, clk
}

func get(t *testing.T, c *tokenservice.Cache) string {
	t.Helper()
	tok, err := c.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return tok.Value
}

func TestCacheRefreshesAMinuteBeforeExpiry(t *testing.T) {
	c, f, clk := newCache(t, time.Hour, tokenservice.CacheOptions{})
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 1 {
		t.Fatalf("first Get %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(time.Hour - time.Minute - time.Second) // 61 s left: cached
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 1 {
		t.Fatalf("61 s before expiry: %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(time.Second) // 60 s left: due, and the caller gets the new one
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("60 s before expiry: %q after %d fetches", v, f.calls.Load())
	}
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("after the refresh: %q after %d fetches", v, f.calls.Load())
	}
}

// A token living under two minutes is replaced at half its life, not on
// every call.
func TestCacheShortLivedTokenRefreshesAtHalfLife(t *testing.T) {
	c, f, clk := newCache(t, 30*time.Second, tokenservice.CacheOptions{})
	get(t, c)
	clk.Add(14 * time.Second)
	if v := get(t, c); v != "tok-1" {
		t.Fatalf("at 14 s of 30: %q", v)
	}
	clk.Add(time.Second)
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("at 15 s of 30: %q after %d fetches", v, f.calls.Load())
	}
}

func TestCacheKeepsValidTokenWhenRefreshFails(t *testing.T) {
	c, f, clk := newCache(t, time.Hour, tokenservice.CacheOptions{RetryInterval: 5 * time.Second})
	get(t, c)
	f.failing.Store(true)
	clk.Add(time.Hour - 30*time.Second) // due, still valid
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 2 {
		t.Fatalf("failed refresh: %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(4 * time.Second) // within the retry interval: no new fetch
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 2 {
		t.Fatalf("within the retry interval: %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(time.Second) // the interval is over: one more try, failing again
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 3 {
		t.Fatalf("after the retry interval: %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(25 * time.Second) // expired, and the service is still down
	if _, err := c.Get(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("expired with the service down: %v", err)
	}
	clk.Add(time.Second) // within the retry interval: the last error, no fetch
	if _, err := c.Get(context.Background()); !errors.Is(err, errDown) || f.calls.Load() != 4 {
		t.Fatalf("within the retry interval: %v after %d fetches", err, f.calls.Load())
	}
	f.failing.Store(false)
	clk.Add(5 * time.Second)
	if v := get(t, c); v != "tok-5" {
		t.Fatalf("after recovery: %q", v)
	}
}

func TestCacheConcurrentCallersShareOneFetch(t *testing.T) {
	c, f, _ := newCache(t, time.Hour, tokenservice.CacheOptions{})
	entered, release := f.hold()
	const n = 32
	var calling, done sync.WaitGroup
	calling.Add(n)
	got := make([]string, n)
	for i := range n {
		done.Go(func() {
			calling.Done()
			v, err := c.Get(context.Background())
			if err != nil {
				t.Errorf("Get: %v", err)
			}
			got[i] = v.Value
		})
	}
	<-entered // the one fetch has started
	calling.Wait()
	release()
	done.Wait()
	for i, v := range got {
		if v != "tok-1" {
			t.Fatalf("caller %d got %q", i, v)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("%d fetches for %d concurrent callers", f.calls.Load(), n)
	}
}

// While one caller refreshes a due but valid token, the others go on with
// the valid one instead of waiting.
func TestCacheValidTokenServedDuringRefresh(t *testing.T) {
	c, f, clk := newCache(t, time.Hour, tokenservice.CacheOptions{})
	get(t, c)
	clk.Add(time.Hour - 10*time.Second)
	entered, release := f.hold()
	leader := make(chan string)
	go func() { v, _ := c.Get(context.Background()); leader <- v.Value }()
	<-entered
	for range 3 {
		if v := get(t, c); v != "tok-1" {
			t.Fatalf("during the refresh: %q", v)
		}
	}
	release()
	if v := <-leader; v != "tok-2" {
		t.Fatalf("the refreshing caller got %q", v)
	}
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("after the refresh: %q after %d fetches", v, f.calls.Load())
	}
}

// A caller's context bounds its wait, not the shared fetch.
func TestCacheCallerContextBoundsTheWaitOnly(t *testing.T) {
	c, f, _ := newCache(t, time.Hour, tokenservice.CacheOptions{})
	entered, release := f.hold()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := c.Get(ctx); errc <- err }()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
	release()
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 1 {
		t.Fatalf("the fetch went on: %q after %d fetches", v, f.calls.Load())
	}
}

func TestCacheInvalidate(t *testing.T) {
	c, f, clk := newCache(t, time.Hour, tokenservice.CacheOptions{})
	get(t, c)
	// A token rejected right after its fetch is not fetched again: the
	// service has just handed it out (FCM's SENDER_ID_MISMATCH for one
	// device, push after push).
	c.Invalidate("tok-1")
	if v := get(t, c); v != "tok-1" || f.calls.Load() != 1 {
		t.Fatalf("Invalidate right after the fetch: %q after %d fetches", v, f.calls.Load())
	}
	clk.Add(tokenservice.DefaultRetryInterval)
	c.Invalidate("tok-1")
	c.Invalidate("tok-1") // many rejections of one token: one refresh
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("after Invalidate: %q after %d fetches", v, f.calls.Load())
	}
	c.Invalidate("tok-1") // already replaced: ignored
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 2 {
		t.Fatalf("stale Invalidate: %q after %d fetches", v, f.calls.Load())
	}
	// An invalidated token whose replacement fails is still used while
	// valid (the provider's answer then stands).
	f.failing.Store(true)
	clk.Add(tokenservice.DefaultRetryInterval)
	c.Invalidate("tok-2")
	if v := get(t, c); v != "tok-2" || f.calls.Load() != 3 {
		t.Fatalf("failed refresh after Invalidate: %q after %d fetches", v, f.calls.Load())
	}
}

func TestCacheProject(t *testing.T) {
	c, f, clk := newCache(t, time.Hour, tokenservice.CacheOptions{RequireProject: true})
	if _, err := c.Get(context.Background()); err == nil {
		t.Fatal("an answer without project id was accepted")
	}
	f.project = "p-1"
	clk.Add(time.Minute) // past the retry interval
	if tok, _, err := c.Access(context.Background()); err != nil || tok != "tok-2" {
		t.Fatalf("Access: %q %v", tok, err)
	}
	f.project = "" // a later answer without project id keeps the known one
	clk.Add(time.Minute)
	c.Invalidate("tok-2")
	tok, project, err := c.Access(context.Background())
	if err != nil || tok != "tok-3" || project != "p-1" {
		t.Fatalf("Access: %q %q %v", tok, project, err)
	}
}

func TestCacheOptions(t *testing.T) {
	if _, err := tokenservice.NewCache(nil, tokenservice.CacheOptions{}); err == nil {
		t.Error("nil fetcher accepted")
	}
	f := func(context.Context) (tokenservice.Token, error) { return tokenservice.Token{}, nil }
	for _, o := range []tokenservice.CacheOptions{{RefreshBefore: -1}, {RetryInterval: -1}, {FetchTimeout: -1}} {
		if _, err := tokenservice.NewCache(f, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
