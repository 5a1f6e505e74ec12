package pusher

import (
	"context"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/delivery"
)

// inbox keeps the full item of an oversized notification for the device
// to fetch with /v2/messages/pull; the push itself is a small wake-up.
type inbox struct{ kv jetstream.KeyValue }

func (in inbox) put(ctx context.Context, deviceKey string, seq uint64, full map[string]string) error {
	id := delivery.ID(seq, deviceKey)
	b, err := json.Marshal(delivery.InboxItem{DeliveryID: id, Payload: full})
	if err != nil {
		return err
	}
	if _, err := in.kv.Put(ctx, delivery.InboxKey(deviceKey, seq), b); err != nil {
		return fmt.Errorf("inbox %s: %w", id, err)
	}
	return nil
}
