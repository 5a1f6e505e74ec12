package alerts_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/pushgo/gateway/ingest/alerts"
)

// BenchmarkOpenNewKey opens an Event per new key (an outage's storm of new
// alerts): the key's claim in its bucket, then the create, on the embedded
// broker, through each claim path. The broker's work is the same on both;
// the difference is the client's (nats.go's request-reply and its PubAck
// decoded with encoding/json against the writer's pipeline).
func BenchmarkOpenNewKey(b *testing.B) {
	for _, path := range claimPaths {
		b.Run(path.name, func(b *testing.B) {
			_, rs := setupClaims(b, 1, alerts.Options{}, path.viaKV)
			tr := rs[0].tr
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if out, aerr := tr.Open(ctx, firing("bench-"+path.name+strconv.Itoa(i), "m")); aerr != nil || !out.Created {
					b.Fatalf("open: %+v %v", out, aerr)
				}
			}
		})
	}
}
