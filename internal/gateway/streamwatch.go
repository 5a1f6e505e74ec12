package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
)

// defaultStreamCheckEvery is how often a process checks its streams'
// identity: a wiped broker ends it within about this long (a deleted
// stream within three times it).
const defaultStreamCheckEvery = 10 * time.Second

// watchStreams reads the creation times of the streams and buckets the
// process's role uses, before its services read them, and adds the
// service that ends the process when one is deleted or created again
// under it (provision.StreamWatch): its positions and bucket views would name a
// log that is gone, and only a fresh start reads the new one from its
// beginning (the orchestrator's restart; compose.yaml restarts every
// service).
func (g *Gateway) watchStreams(ctx context.Context, role broker.Role) error {
	js, err := jetstream.New(g.nc)
	if err != nil {
		return err
	}
	every := g.cfg.streamCheckEvery
	if every <= 0 {
		every = defaultStreamCheckEvery
	}
	w, err := provision.NewStreamWatch(ctx, js, role.Streams())
	if err != nil {
		return fmt.Errorf("watch the broker's streams: %w", err)
	}
	g.services = append(g.services, service{"broker streams", func(ctx context.Context) error {
		return w.Run(ctx, every, func() { g.streamChecks.Add(1) })
	}, func() error { return nil }})
	return nil
}
