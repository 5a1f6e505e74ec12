package gateway

import (
	"context"
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
	o := newOpsServer(nc, 0, func() *projector.Projector { return nil })
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
