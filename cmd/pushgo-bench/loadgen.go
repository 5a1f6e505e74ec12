package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
)

// loadGen is a load process's loop (loadproc.go): the operation its spec
// names, on clients of its own to the spec's address.
type loadGen struct {
	spec      loadSpec
	t         *target
	integ     *integEnv // the integration operations' fixtures
	op        opFunc
	succeeded atomic.Int64    // warm-up included
	kthreads  *kthreadSampler // open loop: sampled by its pacer
}

// newLoadGen checks spec and prepares its operation; nothing is sent yet.
func newLoadGen(spec loadSpec) (*loadGen, error) {
	bad := func(format string, args ...any) (*loadGen, error) {
		return nil, fmt.Errorf("%w: %s", errSpec, fmt.Sprintf(format, args...))
	}
	host, _, err := net.SplitHostPort(spec.Addr)
	switch {
	case err != nil:
		return bad("addr %q: %v", spec.Addr, err)
	case !net.ParseIP(host).IsLoopback():
		return bad("addr %q is not a loopback address", spec.Addr)
	case spec.Client != clientLight && spec.Client != clientNetHTTP:
		return bad("client %q", spec.Client)
	case spec.Workers < 1:
		return bad("%d workers", spec.Workers)
	case spec.Limit <= 0:
		return bad("no limit")
	}
	switch spec.Loop {
	case loopClosed:
		if spec.Duration <= 0 || spec.Warmup < 0 {
			return bad("closed loop of %s after %s", spec.Duration, spec.Warmup)
		}
	case loopOpen:
		if spec.Duration <= 0 || spec.Warmup < 0 || spec.Rate <= 0 {
			return bad("open loop of %s after %s at %.1f/s", spec.Duration, spec.Warmup, spec.Rate)
		}
	case loopCount:
		if spec.Count < 1 {
			return bad("count loop of %d", spec.Count)
		}
	default:
		return bad("loop %q", spec.Loop)
	}

	lc := newLightClient(spec.Addr, spec.Workers)
	t := &target{addr: spec.Addr, base: "http://" + spec.Addr, client: newHTTPClient(spec.Workers), light: lc, reader: lc,
		lightLoad: spec.Client == clientLight, clientName: spec.Client, eventIDs: spec.EventIDs, thingIDs: spec.ThingIDs}
	g := &loadGen{spec: spec, t: t}
	needChannel := func() error {
		if spec.ChannelID == "" || spec.Password == "" {
			return fmt.Errorf("%w: %s needs the channel and its password", errSpec, spec.Op)
		}
		if spec.BodySize > 0 {
			t.bodies = newBodies(spec.ChannelID, spec.Password, spec.BodySize)
		}
		return nil
	}
	var op opFunc
	switch spec.Op {
	case opUpdate, opUpdateOther:
		if err := needChannel(); err != nil {
			return nil, err
		}
		if len(spec.EventIDs) == 0 || len(spec.ThingIDs) == 0 || spec.BodySize == 0 {
			return bad("%s needs events, things and a body size", spec.Op)
		}
		op = t.update
		if spec.Op == opUpdateOther {
			op = t.updateOther
		}
	case opHealthz:
		op = t.healthz
	case opHistory:
		if err := needChannel(); err != nil {
			return nil, err
		}
		if spec.HistoryLimit < 1 || spec.HistoryLast < uint64(spec.HistoryLimit) {
			return bad("history pages of %d from %d operations", spec.HistoryLimit, spec.HistoryLast)
		}
		t.bodies = newBodies(spec.ChannelID, spec.Password, max(spec.BodySize, 200))
		op = t.historyOp(spec.HistoryLast, spec.HistoryLimit)
	case opThingGet:
		if err := needChannel(); err != nil {
			return nil, err
		}
		if len(spec.ThingIDs) == 0 {
			return bad("thing-get needs things")
		}
		t.bodies = newBodies(spec.ChannelID, spec.Password, max(spec.BodySize, 200))
		op = t.thingGet
	case opEventCreate, opDynatrace, opAlertmanager:
		if err := needChannel(); err != nil {
			return nil, err
		}
		t.bodies = newBodies(spec.ChannelID, spec.Password, max(spec.BodySize, 200))
		e := &integEnv{t: t, token: spec.Token, header: "Authorization: Api-Token " + spec.Token + "\r\n", hosts: spec.Hosts}
		g.integ = e
		switch spec.Op {
		case opEventCreate:
			op = e.eventCreate
		case opDynatrace:
			if spec.Token == "" || len(spec.Hosts) == 0 || spec.DTType == "" {
				return bad("dynatrace needs a token, hosts and an event type")
			}
			op = e.dynatrace(spec.DTType, spec.DTTitle, spec.DTSel)
		case opAlertmanager:
			if spec.Token == "" || spec.AMAlerts < 1 {
				return bad("alertmanager needs a token and alerts")
			}
			e.am = newAMSenders(spec.AMSeed, spec.Workers, spec.AMAlerts)
			op = e.alertmanager
		}
	case opMessage:
		if err := needChannel(); err != nil {
			return nil, err
		}
		op = t.message(newPeerBodies(spec.ChannelID, spec.Password, "", peerBodySize))
	case opDeliveryMessage:
		if err := needChannel(); err != nil {
			return nil, err
		}
		op = func(ctx context.Context, w *worker) error {
			w.buf = deliveryMessageBody(w.buf[:0], spec.ChannelID, spec.Password, w.n)
			_, err := t.call(ctx, t.light, w, "/message", w.buf)
			return err
		}
	case opNtfy:
		if spec.Topic == "" {
			return bad("ntfy needs a topic")
		}
		op = t.ntfyPublish(newPeerBodies("", "", spec.Topic, peerBodySize))
	default:
		return bad("operation %q", spec.Op)
	}
	g.op = func(ctx context.Context, w *worker) error {
		err := op(ctx, w)
		if err == nil {
			g.succeeded.Add(1)
		}
		return err
	}
	return g, nil
}

// run runs the spec's loop; it returns when the loop is done or ctx ends.
func (g *loadGen) run(ctx context.Context) result {
	s := g.spec
	switch s.Loop {
	case loopOpen:
		// The tail is matched with the kernel's memory threads' bursts
		// (kthreads.go), sampled by the pacer.
		g.kthreads = newKthreadSampler("/proc", memoryKthreads("/proc"))
		return openLoop(ctx, s.Workers, s.Rate, s.Warmup, s.Duration, g.op, g.kthreads.poll)
	case loopCount:
		return countLoop(ctx, s.Workers, s.Count, g.op)
	default:
		return closedLoop(ctx, s.Workers, s.Warmup, s.Duration, g.op, true)
	}
}

func (g *loadGen) close() {
	g.t.client.CloseIdleConnections()
	g.t.light.close()
}

// message is one POST /message of the peer comparison.
func (t *target) message(b *peerBodies) opFunc {
	return func(ctx context.Context, w *worker) error {
		w.buf = b.ours(w.buf[:0], w.n)
		_, err := t.call(ctx, t.light, w, "/message", w.buf)
		return err
	}
}

// ntfyPublish is one JSON publish to ntfy (POST /); ntfy answers 200 with
// the message it published.
func (t *target) ntfyPublish(b *peerBodies) opFunc {
	published := []byte(`"event":"message"`)
	return func(ctx context.Context, w *worker) error {
		w.buf = b.ntfy(w.buf[:0], w.n)
		var status int
		var body []byte
		var err error
		if t.lightLoad {
			var r response
			r, err = t.light.conn(w.id).exchange(ctx, "POST", "/", "", w.buf)
			status, body = r.status, r.body
		} else {
			status, body, err = exchange(ctx, t.client, t.base+"/", "", w.buf)
		}
		switch {
		case err != nil:
			return err
		case status != 200 || !bytes.Contains(body, published):
			return fmt.Errorf("ntfy publish %d %q", status, truncate(body))
		}
		return nil
	}
}
