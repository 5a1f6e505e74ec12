package gateway

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
)

// defaultStreamCheckEvery is how often a process checks its streams'
// identity: a wiped broker ends it within about this long (a deleted
// stream within three times it).
const defaultStreamCheckEvery = 10 * time.Second

// watchStreams adds the service that ends the process when one of the
// streams and buckets its role uses is deleted or created again under it
// (provision.WatchStreams): its positions and bucket views would name a
// log that is gone, and only a fresh start reads the new one from its
// beginning (the orchestrator's restart; compose.yaml restarts every
// service).
func (g *Gateway) watchStreams(role broker.Role) error {
	js, err := jetstream.New(g.nc)
	if err != nil {
		return err
	}
	every := g.cfg.streamCheckEvery
	if every <= 0 {
		every = defaultStreamCheckEvery
	}
	names := role.Streams()
	g.services = append(g.services, service{"broker streams", func(ctx context.Context) error {
		return provision.WatchStreams(ctx, js, names, every, func() { g.streamChecks.Add(1) })
	}, func() error { return nil }})
	return nil
}
