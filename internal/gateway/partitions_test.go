package gateway

import (
	"testing"

	"github.com/pushgo/gateway/pusher"
)

// TestNewDeliveryPartitionsByShape: a process that runs every service
// gives a new deployment one delivery partition (its one pusher owns them
// all), a pusher-only process the pusher's default, which replicas share.
func TestNewDeliveryPartitionsByShape(t *testing.T) {
	for target, want := range map[string]int{"all": pusher.SingleNodePartitions, "pusher": pusher.DefaultPartitions} {
		c := Defaults()
		c.Target = target
		if got := c.NewDeliveryPartitions(); got != want {
			t.Errorf("target %s: %d partitions for a new deployment, want %d", target, got, want)
		}
	}
}
