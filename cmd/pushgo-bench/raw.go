package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pushgo/gateway/broker/provision"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// rawTarget is the ceiling under the gateway: a fresh embedded broker
// started exactly as gateway.Start starts it (same limits, same Sync,
// in-process connection), the PUSHGO_OPS stream with the gateway's
// configuration, and synchronous publishes of the same bodies to the same
// number of per-entity subjects. Nothing else: no HTTP, no validation, no
// per-entity expected-sequence check, no headers.
type rawTarget struct {
	dir       string
	b         *broker.Embedded
	nc        *nats.Conn
	js        jetstream.JetStream
	bodies    *bodies
	entityIDs []string
	subjects  [2][]string // event, thing
}

func startRaw(ctx context.Context, o *options, m syncMode, log *slog.Logger) (r *rawTarget, err error) {
	r = &rawTarget{}
	if r.dir, err = os.MkdirTemp("", "pushgo-bench-raw-*"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	cfg := gateway.Defaults()
	cfg.Sync = m.sync
	r.b, err = broker.Start(broker.Config{
		Dir: filepath.Join(r.dir, "jetstream"), Listen: "off", Sync: cfg.Sync,
		MaxStore: cfg.MaxStore, MaxMemory: cfg.MaxMemory, Logger: log.With("component", "nats"),
	})
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if r.nc, err = r.b.Connect(nats.MaxReconnects(-1)); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return nil, err
	}
	// cfg.StreamOptions() of the defaults is streams.DefaultOptions(): the
	// stream the gateway's streams.Ensure creates.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = r.js.CreateStream(sctx, provision.StreamConfig(streams.OpsStream(cfg.StreamOptions()), cfg.StreamOptions()))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}

	r.addEntities(o.entities, o.bodySize)
	return r, nil
}

// publish is the measured operation: alternately an event-like and a
// thing-like body to a random entity's subject, waiting for the PubAck.
func (r *rawTarget) publish(ctx context.Context, w *worker) error {
	kind := w.n % 2
	i := w.rng.IntN(len(r.entityIDs))
	if kind == 0 {
		w.buf = r.bodies.eventUpdate(w.buf[:0], r.entityIDs[i], time.Now().UnixMilli(), w.n)
	} else {
		w.buf = r.bodies.thingUpdate(w.buf[:0], r.entityIDs[i], time.Now().UnixMilli(), w.n)
	}
	_, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: r.subjects[kind][i], Data: w.buf})
	return err
}

func (r *rawTarget) close() {
	if r.nc != nil {
		r.nc.Close()
	}
	if r.b != nil {
		r.b.Shutdown()
	}
	if r.dir != "" {
		_ = os.RemoveAll(r.dir)
	}
}

// addEntities gives r n events and n things of one new channel to publish
// to, and bodies of about bodySize bytes.
func (r *rawTarget) addEntities(n, bodySize int) {
	channelID := ids.NewChannelID()
	r.subjects = [2][]string{make([]string, n), make([]string, n)}
	r.entityIDs = make([]string, n)
	for i := range n {
		r.entityIDs[i] = ids.NewRandomID() // as random as the derived ids of the gateway's entities
		r.subjects[0][i] = streams.OpSubject(channelID, ops.KindEvent, r.entityIDs[i])
		r.subjects[1][i] = streams.OpSubject(channelID, ops.KindThing, ids.NewRandomID())
	}
	r.bodies = newBodies(channelID, "bench-password", bodySize)
}
