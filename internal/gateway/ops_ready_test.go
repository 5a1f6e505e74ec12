package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
)

// TestReadyzReportsTheProcesssOwnProjector: in a process that runs a
// projector and ingest, /readyz's projector fields are its own
// projector's, not those of the replica that answered ingest's status
// request over the broker (another process's, in a scaled deployment of
// such processes).
func TestReadyzReportsTheProcesssOwnProjector(t *testing.T) {
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	o := newOpsServer(nc, 0, nil, func() *projector.Projector { return nil })
	local := map[string]any{"projector_applied": uint64(5), "projector_lag": uint64(0), "projector_receipts_applied": uint64(3)}
	asked := map[string]any{"projector_applied": uint64(9), "projector_lag": uint64(1), "projector_receipts_applied": uint64(7)}
	for _, c := range []struct {
		name string
		info map[string]any
	}{{"projector", local}, {"ingest", asked}} {
		if err := o.add(c.name, func(context.Context) (map[string]any, error) { return c.info, nil }); err != nil {
			t.Fatal(err)
		}
	}
	info, err := o.ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range local {
		if info[k] != want {
			t.Errorf("%s = %v, want the process's own projector's %v", k, info[k], want)
		}
	}
}

// TestReadyzFloodRunsOneCheckAtATime: /readyz is open, and each check asks
// the broker several things; a flood of probes shares the check in flight
// instead of running one each, every prober still gets the answer, and a
// method /readyz does not take is refused without a check.
func TestReadyzFloodRunsOneCheckAtATime(t *testing.T) {
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	o := newOpsServer(nc, 0, nil, func() *projector.Projector { return nil })
	const probers = 16
	var (
		mu              sync.Mutex
		running, maxRun int
		calls           int
		arrived         = make(chan struct{}, probers)
		release         = make(chan struct{})
		hold            = make(chan struct{}) // closed: checks do not wait
	)
	close(hold)
	if err := o.add("slow", func(context.Context) (map[string]any, error) {
		mu.Lock()
		running++
		calls++
		maxRun = max(maxRun, running)
		gate := hold
		mu.Unlock()
		<-gate
		mu.Lock()
		running--
		mu.Unlock()
		return map[string]any{"checked": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		o.ServeHTTP(w, r)
	}))
	defer srv.Close()

	r, err := http.Post(srv.URL+"/readyz", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	<-arrived
	mu.Lock()
	posted := calls
	hold = release
	mu.Unlock()
	if r.StatusCode != http.StatusMethodNotAllowed || posted != 0 {
		t.Fatalf("POST /readyz: %d after %d checks, want 405 and no check", r.StatusCode, posted)
	}

	statuses := make(chan int, probers)
	for range probers {
		go func() {
			r, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				statuses <- 0
				return
			}
			r.Body.Close()
			statuses <- r.StatusCode
		}()
	}
	// Every prober is in the handler before any check may end: on the
	// code before, each ran a check of its own, all in flight at once.
	for range probers {
		<-arrived
	}
	close(release)
	for range probers {
		if s := <-statuses; s != http.StatusOK {
			t.Fatalf("a prober got %d, want 200", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxRun != 1 {
		t.Fatalf("%d readiness checks ran at once under %d probers (%d checks in all), want 1", maxRun, probers, calls)
	}
}

// TestReadyzCheckEndsWithTheProcess: a readiness check whose probers all
// hung up is still owned: stopping the ops server (Gateway.Close, before
// the services the check asks are closed) ends it and waits for it, and a
// probe after that is answered "not ready" without a check.
func TestReadyzCheckEndsWithTheProcess(t *testing.T) {
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	o := newOpsServer(nc, 0, nil, func() *projector.Projector { return nil })
	entered := make(chan struct{})
	var ended atomic.Bool
	calls := atomic.Int32{}
	if err := o.add("slow", func(ctx context.Context) (map[string]any, error) {
		calls.Add(1)
		close(entered)
		<-ctx.Done() // a service that does not answer
		ended.Store(true)
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	ctx, hangUp := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		r, err := http.DefaultClient.Do(req)
		if err == nil {
			r.Body.Close()
		}
		answered <- err
	}()
	<-entered
	hangUp()
	<-answered
	o.closeChecks()
	if !ended.Load() {
		t.Fatal("closeChecks returned with the readiness check still running")
	}
	r, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || calls.Load() != 1 {
		t.Fatalf("/readyz after the checks closed: %d after %d checks, want 503 and no new check", r.StatusCode, calls.Load())
	}
}

// TestReadyzNamesTheServiceThatIsNotReady: a service that is not ready (a
// projector rebuilding) is answered 503 service_not_ready naming it once,
// with Retry-After; it was broker_unavailable, with the broker fine, and
// "projector: projector: …".
func TestReadyzNamesTheServiceThatIsNotReady(t *testing.T) {
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	o := newOpsServer(nc, 0, nil, func() *projector.Projector { return nil })
	t.Cleanup(o.closeChecks)
	if err := o.add("projector", func(context.Context) (map[string]any, error) {
		return nil, errors.New("projector: rebuilding the projection from the log: folded 30000 of 82924 operations (36%)")
	}); err != nil {
		t.Fatal(err)
	}
	if err := o.add("pusher", func(context.Context) (map[string]any, error) { return nil, errors.New("partition 0 not consuming") }); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var body struct {
		Error     string `json:"error"`
		ErrorCode string `json:"error_code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || body.ErrorCode != "service_not_ready" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("/readyz with the projector rebuilding: %d %s (Retry-After %q), want 503 service_not_ready with Retry-After",
			rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if !strings.Contains(body.Error, "projector: rebuilding") || strings.Contains(body.Error, "projector: projector:") {
		t.Fatalf("/readyz error %q: want the projector named once, and why", body.Error)
	}
}

// TestReadyzOfAStoppingProcess: a process that is stopping is not ready,
// and says so (service_not_ready), not that the broker is unavailable.
func TestReadyzOfAStoppingProcess(t *testing.T) {
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	o := newOpsServer(nc, 0, nil, func() *projector.Projector { return nil })
	o.closeChecks()
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"error_code":"service_not_ready"`) ||
		!strings.Contains(rec.Body.String(), "stopping") {
		t.Fatalf("/readyz of a stopping process: %d %s, want 503 service_not_ready saying it is stopping", rec.Code, rec.Body)
	}
}
