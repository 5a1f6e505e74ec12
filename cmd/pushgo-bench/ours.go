package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/ids"
)

// getReaders are the connections of the paced /thing/get readers.
const getReaders = 16

// target is a running gateway with a channel and its entities.
type target struct {
	gw         *gateway.Gateway
	dir        string
	addr       string       // host:port of the gateway's HTTP server
	client     *http.Client // net/http: set-up, and (in a load process) the load with -client nethttp
	light      *lightClient // in a load process: one connection per load worker
	reader     *lightClient // in a load process: the connections of the /thing/get readers
	lightLoad  bool         // the load uses the light client
	clientName string       // -client
	base       string
	healthURL  string
	bodySize   int
	bodies     *bodies
	eventIDs   []string
	thingIDs   []string
}

// startTarget starts the whole gateway in-process, as the pushgo binary
// does, on a fresh data directory, then creates the channel and the
// entities over HTTP (not measured).
func startTarget(ctx context.Context, o *options, m syncMode, log *slog.Logger) (t *target, err error) {
	if t, err = startGateway(ctx, o, m, log); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	began := time.Now()
	if t.eventIDs, err = t.create(sctx, o.entities, o.concurrency, "/event/create", "event_id", t.bodies.eventCreate); err == nil {
		t.thingIDs, err = t.create(sctx, o.entities, o.concurrency, "/thing/create", "thing_id", t.bodies.thingCreate)
	}
	if err != nil {
		t.close()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  set-up: channel, %d events, %d things created in %s\n",
		len(t.eventIDs), len(t.thingIDs), time.Since(began).Round(time.Millisecond))
	return t, nil
}

// startGateway starts the whole gateway in-process, with its embedded
// broker, on a fresh data directory, with its clients, and creates the
// channel (not measured).
func startGateway(ctx context.Context, o *options, m syncMode, log *slog.Logger) (t *target, err error) {
	cfg := gateway.Defaults()
	cfg.NATSListen, cfg.Sync, cfg.Target = "off", m.sync, o.target
	return launchGateway(ctx, o, cfg, log)
}

// launchGateway starts the gateway of cfg in-process on a fresh data
// directory (on a free loopback port, logging warnings), with its clients,
// and creates the channel (not measured): the start-up every HTTP row
// shares, whatever broker cfg names.
func launchGateway(ctx context.Context, o *options, cfg gateway.Config, log *slog.Logger) (t *target, err error) {
	t = &target{}
	if t.dir, err = os.MkdirTemp("", "pushgo-bench-gw-*"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	cfg.DataDir, cfg.HTTPAddr, cfg.LogLevel = t.dir, "127.0.0.1:0", "warn"
	cfg.InboxPerDevice = o.inboxPerDevice()
	if o.partitions > 0 {
		cfg.DeliveryPartitions = o.partitions
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if t.gw, err = gateway.Start(sctx, cfg, log); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	t.addr = t.gw.Addr()
	t.base = "http://" + t.addr
	t.healthURL = t.base + "/healthz"
	t.client = newHTTPClient(o.concurrency)
	t.lightLoad, t.clientName = o.client == clientLight, o.client
	t.bodySize = o.bodySize

	password := "bench-" + ids.NewRandomID()[:16]
	b, err := post(sctx, t.client, t.base+"/channel/create", []byte(`{"channel_name":"pushgo-bench","password":"`+password+`"}`), true)
	if err != nil {
		return nil, fmt.Errorf("create channel: %w", err)
	}
	channelID, err := dataField(b, "channel_id")
	if err != nil {
		return nil, err
	}
	t.bodies = newBodies(channelID, password, o.bodySize)
	return t, nil
}

// create makes n entities with conc clients (at most -concurrency) and
// returns their ids. Any failure fails the benchmark: the measured phases
// need every entity.
func (t *target) create(ctx context.Context, n, conc int, route, idField string, body func(int, int64) []byte) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				b, err := post(octx, t.client, t.base+route, body(i, time.Now().UnixMilli()), true)
				cancel()
				if err == nil {
					out[i], err = dataField(b, idField)
				}
				if err != nil {
					errs <- fmt.Errorf("set-up %s #%d: %w", route, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// spec is a load process's work on this gateway: op through -client, with
// the channel, the entities and the body size of this target.
func (t *target) spec(op string) loadSpec {
	s := loadSpec{Op: op, Addr: t.addr, Client: t.clientName, BodySize: t.bodySize, EventIDs: t.eventIDs, ThingIDs: t.thingIDs}
	if t.bodies != nil {
		s.ChannelID, s.Password = t.bodies.channelID, t.bodies.password
	}
	return s
}

// update is the measured operation: alternately an event update and a thing
// update of a random entity, with a changing time and readings, through the
// client -client chose.
func (t *target) update(ctx context.Context, w *worker) error {
	return t.updateVia(ctx, w, t.lightLoad)
}

// updateOther is update through the other client (-diag).
func (t *target) updateOther(ctx context.Context, w *worker) error {
	return t.updateVia(ctx, w, !t.lightLoad)
}

func (t *target) updateVia(ctx context.Context, w *worker, light bool) error {
	ms := time.Now().UnixMilli()
	var path string
	if w.n%2 == 0 {
		w.buf = t.bodies.eventUpdate(w.buf[:0], t.eventIDs[w.rng.IntN(len(t.eventIDs))], ms, w.n)
		path = "/event/update"
	} else {
		w.buf = t.bodies.thingUpdate(w.buf[:0], t.thingIDs[w.rng.IntN(len(t.thingIDs))], ms, w.n)
		path = "/thing/update"
	}
	if light {
		_, err := t.light.conn(w.id).post(ctx, path, w.buf)
		return err
	}
	_, err := post(ctx, t.client, t.base+path, w.buf, false)
	return err
}

// call posts body to path: with lc, on worker w's connection of lc, else
// with net/http. The returned body is valid until w's next call.
func (t *target) call(ctx context.Context, lc *lightClient, w *worker, path string, body []byte) ([]byte, error) {
	if t.lightLoad {
		return lc.conn(w.id).post(ctx, path, body)
	}
	return post(ctx, t.client, t.base+path, body, true)
}

// healthz is the -diag floor operation: GET /healthz, the gateway's cheapest
// route, through the same router, middleware and client.
func (t *target) healthz(ctx context.Context, w *worker) error {
	if t.lightLoad {
		_, err := t.light.conn(w.id).get(ctx, "/healthz")
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.healthURL, nil)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, successPrefix) {
		return fmt.Errorf("/healthz %d %s", resp.StatusCode, errorCode(b))
	}
	return nil
}

// settleLimit bounds the wait for the projector to catch up.
const settleLimit = 2 * time.Minute

// settle waits until the in-process projector (target "all") has folded
// every operation appended so far and its store has finished the flushes
// and compactions those writes started, so that neither the backlog nor
// the compactions a max-rate phase leaves behind load the next phase. It
// reports the backlog it found, how long the fold took to clear it and how
// long the store's compactions went on after; ok is false if either did
// not end within settleLimit.
func (t *target) settle(ctx context.Context) (backlog uint64, took, compacting time.Duration, ok bool) {
	p := t.gw.Projector()
	if p == nil {
		return 0, 0, 0, true
	}
	began := time.Now()
	backlog = p.Lag()
	prev := p.Applied()
	for {
		if time.Since(began) >= settleLimit || ctx.Err() != nil {
			return backlog, time.Since(began), 0, false
		}
		time.Sleep(100 * time.Millisecond)
		cur := p.Applied()
		if p.Lag() == 0 && cur == prev {
			break
		}
		prev = cur
	}
	took = time.Since(began)
	// Idle twice in a row: a compaction that ends may pick the next.
	for idle := 0; idle < 2; {
		if time.Since(began) >= settleLimit || ctx.Err() != nil {
			return backlog, took, time.Since(began) - took, false
		}
		if p.StoreBackground().Idle() {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return backlog, took, time.Since(began) - took, true
}

// close stops the gateway (letting in-flight requests finish) and removes
// its data directory. It may be called more than once.
func (t *target) close() {
	if t.client != nil {
		t.client.CloseIdleConnections()
	}
	for _, lc := range []*lightClient{t.light, t.reader} {
		if lc != nil {
			lc.close()
		}
	}
	if t.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := t.gw.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "  gateway close:", err)
		}
		cancel()
		t.gw = nil
	}
	if t.dir != "" {
		_ = os.RemoveAll(t.dir)
		t.dir = ""
	}
}
