package ingest_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/reads"
)

// TestReadyReportsTheProjectorsReceiptsFold: an ingest replica's /readyz
// carries what the projector replica that answered reports, its receipts
// fold's position included, as a process running a projector reports its
// own; a replica that predates the field leaves it out rather than
// reporting a zero it never said.
func TestReadyReportsTheProjectorsReceiptsFold(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	for _, tc := range []struct {
		name   string
		answer string
		want   map[string]uint64 // the keys info must hold, and only these
	}{
		{"current replica", `{"applied":12,"lag":3,"receipts_applied":7}`,
			map[string]uint64{"projector_applied": 12, "projector_lag": 3, "projector_receipts_applied": 7}},
		{"replica without the field", `{"applied":12,"lag":3}`,
			map[string]uint64{"projector_applied": 12, "projector_lag": 3}},
		{"no receipt folded yet", `{"applied":0,"lag":0,"receipts_applied":0}`,
			map[string]uint64{"projector_applied": 0, "projector_lag": 0, "projector_receipts_applied": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A stand-in for the projector's status answer, on the real broker.
			sub, err := g.nc.Subscribe(reads.Subject(reads.ProjectorStatus), func(m *nats.Msg) {
				_ = m.Respond(reads.EncodeResponse([]byte(tc.answer)))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if err := g.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			info, err := g.svc.Ready(t.Context())
			if err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if len(info) != len(tc.want) {
				t.Errorf("info %v, want exactly the keys of %v", info, tc.want)
			}
			for k, want := range tc.want {
				if got, ok := info[k].(uint64); !ok || got != want {
					t.Errorf("info[%q] = %v (%T), want %d", k, info[k], info[k], want)
				}
			}
		})
	}
}
