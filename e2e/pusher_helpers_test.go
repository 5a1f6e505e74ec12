package e2e

// Helpers of the delivery tests (pusher_*_test.go): FCM credentials whose
// token endpoint is a server of the test process, pusher processes sending
// to an in-test FakeFCM over loopback, and what the tests read of the
// delivery streams and consumers through the broker.

import (
	"context"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// Names of the delivery contract (schemas/streams, pusher), restated on
// purpose like those of harness_test.go.
const (
	deliveriesStream = "PUSHGO_DELIVERIES"
	receiptsStream   = "PUSHGO_RECEIPTS"
	fanoutConsumer   = "pushgo-fanout"
	senderConsumer   = "pushgo-sender"
	fcmProjectID     = "pushgo-test"
)

// fcmCredentials is a service account whose token endpoint is local.
func fcmCredentials(t *testing.T) string {
	f, _ := sendertest.ServiceAccount(t, "pushgo-test")
	return f
}

// scriptLatency makes fake answer the first n pushes of each token OK after
// a random delay in [lo, hi]; later pushes are answered OK at once.
func scriptLatency(fake *sendertest.FakeFCM, tokens []string, n int, lo, hi time.Duration, seed uint64) {
	rng := mrand.New(mrand.NewPCG(seed, 0x5eed))
	for _, tok := range tokens {
		answers := make([]sendertest.Answer, n)
		for i := range answers {
			answers[i] = sendertest.Answer{Kind: sendertest.OK, Latency: lo + time.Duration(rng.Int64N(int64(hi-lo)+1))}
		}
		fake.Script(tok, answers...)
	}
}

// startPusher starts `PUSHGO_TARGET=pusher` connected to the broker of
// ingest a, its FCM sender pointed at fake. It does not wait: a pusher has
// no HTTP; use waitPullers.
func startPusher(t *testing.T, a *gateway, credentials string, fake *sendertest.FakeFCM, env ...string) *gateway {
	t.Helper()
	env = append([]string{
		"PUSHGO_FCM_CREDENTIALS_FILE=" + credentials,
		"PUSHGO_FCM_PROJECT_ID=" + fcmProjectID,
		"PUSHGO_FCM_ENDPOINT=" + fake.Endpoint(),
	}, env...)
	return startGateway(t, gwConfig{DataDir: t.TempDir(), Target: "pusher", NATSURL: a.natsURL, Env: env})
}

// jsConn is a test connection to a broker.
type jsConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func dialJS(t *testing.T, natsURL string) *jsConn {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second), nats.Name("pushgo-e2e"))
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return &jsConn{nc: nc, js: js}
}

// streamState returns the state of stream.
func (c *jsConn) streamState(ctx context.Context, stream string) (jetstream.StreamState, error) {
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return info.State, nil
}

// consumerInfo returns the info of a durable consumer; nil, nil when it
// does not exist (yet).
func (c *jsConn) consumerInfo(ctx context.Context, stream, name string) (*jetstream.ConsumerInfo, error) {
	cons, err := c.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// waitPullers waits until both shared consumers of the pusher exist and
// each has at least n waiting pull requests: n replicas are taking
// operations and tasks. (The fan-out consumer starts at new operations, so
// nothing written before it exists is ever pushed.)
func (c *jsConn) waitPullers(t *testing.T, n int, bound time.Duration, watch ...*gateway) {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		failIfExited(t, watch)
		ready := true
		for _, sc := range [][2]string{{opsStream, fanoutConsumer}, {deliveriesStream, senderConsumer}} {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			info, err := c.consumerInfo(ctx, sc[0], sc[1])
			cancel()
			switch {
			case err != nil:
				ready, last = false, err.Error()
			case info == nil:
				ready, last = false, sc[1]+" does not exist"
			case info.NumWaiting < n:
				ready, last = false, sc[1]+" has "+strconv.Itoa(info.NumWaiting)+" waiting pulls"
			}
		}
		if ready {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pushers not pulling within %s (last: %s)", bound, last)
}

// receipt is one record of PUSHGO_RECEIPTS (schemas/delivery), restated.
type receipt struct {
	Kind       string `json:"kind"`
	ChannelID  string `json:"channel_id"`
	OpID       string `json:"op_id"`
	Seq        uint64 `json:"seq"`
	Tasks      int    `json:"tasks"`
	DeliveryID string `json:"delivery_id"`
	DeviceKey  string `json:"device_key"`
	Provider   string `json:"provider"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	Attempts   int    `json:"attempts"`
}

// readReceipts reads and decodes the whole of PUSHGO_RECEIPTS.
func readReceipts(t *testing.T, natsURL string) []receipt {
	t.Helper()
	var out []receipt
	for _, m := range readStream(t, natsURL, receiptsStream) {
		var r receipt
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("%s seq %d: not a receipt: %v: %s", receiptsStream, m.Sequence, err, m.Data)
		}
		out = append(out, r)
	}
	return out
}
