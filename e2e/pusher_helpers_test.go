package e2e

// Helpers of the delivery tests (pusher_*_test.go): FCM credentials whose
// token endpoint is a server of the test process, pusher processes sending
// to an in-test FakeFCM over loopback, a recorder that puts the pushes of
// every replica in one order, and what the tests read of the delivery
// streams and consumers through the broker.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	senderConsumer   = "pushgo-sender"
	fcmProjectID     = "pushgo-test"
	// deliveryPartitions is the PUSHGO_DELIVERY_PARTITIONS every process
	// of these tests gets (the harness sets it, as compose.yaml does for
	// a scaled deployment); each partition is the durable consumer
	// deliverConsumer(i) of PUSHGO_OPS in the priority group "pushers".
	deliveryPartitions = 8
	deliveryGroup      = "pushers"
)

// deliverConsumer is the name of partition i's consumer of PUSHGO_OPS.
func deliverConsumer(i int) string { return "pushgo-deliver-" + strconv.Itoa(i) }

// partitionOf is the delivery partition of a device among n: FNV-32a of
// its key, mod n (pusher.PartitionOf, restated).
func partitionOf(deviceKey string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(deviceKey))
	return int(h.Sum32() % uint32(n))
}

// fcmCredentials is a service account whose token endpoint is local.
func fcmCredentials(t *testing.T) string {
	f, _ := sendertest.ServiceAccount(t, "pushgo-test")
	return f
}

// startPusher starts `PUSHGO_TARGET=pusher` connected to the broker of
// ingest a, its FCM sender pointed at endpoint (a FakeFCM's Endpoint, or
// a pushRecorder's in front of one). It waits for /healthz only: use
// waitPullers to know it takes operations.
func startPusher(t *testing.T, a *gateway, credentials, endpoint string, env ...string) *gateway {
	t.Helper()
	env = append([]string{
		"PUSHGO_FCM_CREDENTIALS_FILE=" + credentials,
		"PUSHGO_FCM_PROJECT_ID=" + fcmProjectID,
		"PUSHGO_FCM_ENDPOINT=" + endpoint,
	}, env...)
	return startGateway(t, gwConfig{DataDir: t.TempDir(), Target: "pusher", NATSURL: a.natsURL, Env: env})
}

// jsConn is a test connection to a broker.
type jsConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// dialJS connects to the broker at natsURL as its admin role
// (unrestricted, as an operator's nats CLI would).
func dialJS(t *testing.T, natsURL string) *jsConn {
	t.Helper()
	creds, err := nats.NkeyOptionFromSeed(credsFile(t, natsURL, "admin"))
	if err != nil {
		t.Fatalf("broker credentials: %v", err)
	}
	// Pings every second: on a cluster, a hung (SIGSTOPped) server is left
	// for another within seconds, not nats.go's default of minutes.
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second), nats.Name("pushgo-e2e"), creds,
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
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

// partitionState is what the test reads of one partition consumer.
type partitionState struct {
	// Floor is the ack floor (a stream sequence): every operation at or
	// below it is delivered and recorded, and the partition's next owner
	// starts above it.
	Floor uint64
	// Pin is the pinned client's id: "" while no replica is pinned.
	Pin                          string
	Delivered                    uint64 // the last stream sequence handed out
	Pending, AckPending, Waiting int
}

func (s partitionState) String() string {
	pin := s.Pin
	if pin == "" {
		pin = "none"
	}
	return fmt.Sprintf("floor %d, delivered %d, ack-pending %d, pending %d, waiting pulls %d, pinned %s",
		s.Floor, s.Delivered, s.AckPending, s.Pending, s.Waiting, pin)
}

// partitions reads the state of every partition consumer.
func (c *jsConn) partitions(ctx context.Context) ([deliveryPartitions]partitionState, error) {
	var out [deliveryPartitions]partitionState
	var errs [deliveryPartitions]error
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { // all at once: read right after a kill, the sooner the better
			info, err := c.consumerInfo(ctx, opsStream, deliverConsumer(i))
			if err == nil && info == nil {
				err = errors.New("does not exist")
			}
			if err != nil {
				errs[i] = fmt.Errorf("consumer %s: %w", deliverConsumer(i), err)
				return
			}
			s := partitionState{Floor: info.AckFloor.Stream, Delivered: info.Delivered.Stream,
				Pending: int(info.NumPending), AckPending: info.NumAckPending, Waiting: info.NumWaiting}
			for _, g := range info.PriorityGroups {
				if g.Group == deliveryGroup {
					s.Pin = g.PinnedClientID
				}
			}
			out[i] = s
		})
	}
	wg.Wait()
	return out, errors.Join(errs[:]...)
}

// partitionsReport describes every partition consumer, one per line, for
// a failure message.
func (c *jsConn) partitionsReport() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.partitions(ctx)
	if err != nil {
		return err.Error()
	}
	return describe(st)
}

// describe lists the partitions' states, one per line.
func describe(st [deliveryPartitions]partitionState) string {
	var b strings.Builder
	for i, s := range st {
		fmt.Fprintf(&b, "\n  %s: %s", deliverConsumer(i), s)
	}
	return b.String()
}

// waitPullers waits until every partition consumer and the retry queue's
// consumer exist and each has at least n waiting pull requests: n replicas
// are pulling every partition (one of them pinned) and the retry queue.
// (A partition consumer starts at new operations, so nothing written
// before it exists is ever pushed.)
func (c *jsConn) waitPullers(t *testing.T, n int, bound time.Duration, watch ...*gateway) {
	t.Helper()
	type sc struct{ stream, consumer string }
	all := []sc{{deliveriesStream, senderConsumer}}
	for i := range deliveryPartitions {
		all = append(all, sc{opsStream, deliverConsumer(i)})
	}
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		failIfExited(t, watch)
		ready := true
		for _, s := range all {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			info, err := c.consumerInfo(ctx, s.stream, s.consumer)
			cancel()
			switch {
			case err != nil:
				ready, last = false, err.Error()
			case info == nil:
				ready, last = false, s.consumer+" does not exist"
			case info.NumWaiting < n:
				ready, last = false, s.consumer+" has "+strconv.Itoa(info.NumWaiting)+" waiting pulls"
			}
			if !ready {
				break
			}
		}
		if ready {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pushers not pulling within %s (last: %s)", bound, last)
}

// pushRecorder stands in front of the FakeFCMs of several pusher replicas
// (each replica has its own, so a push is attributed to the replica that
// sent it). Every request is recorded as it arrives, in one order across
// all replicas, then passed to the replica's fake whatever becomes of the
// sender (so what the recorder saw is what the fakes received), and
// answered with the fake's answer after a random delay, so a replica always
// has sends in flight.
type pushRecorder struct {
	client   *http.Client
	inFlight atomic.Int64
	lo, hi   time.Duration

	mu          sync.Mutex
	pushes      []recordedPush
	rng         *mrand.Rand
	forwardErrs []string
	apnsFronts  []*sendertest.FrameAPNs
}

// recordedPush is one push request as it reached the provider.
type recordedPush struct {
	Order   int // arrival order across every replica
	Replica int
	At      time.Time // when it arrived
	Token   string
	// From the FCM data or the APNs body: "<op seq>:<device_key>", and the
	// operation's id.
	DeliveryID, OpID string
	// APNs: the push came to an APNs front (apnsFront), with a bearer
	// token when Authorized.
	APNs, Authorized bool
}

func newPushRecorder(t *testing.T, lo, hi time.Duration, seed uint64) *pushRecorder {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	t.Cleanup(tr.CloseIdleConnections)
	return &pushRecorder{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, lo: lo, hi: hi,
		rng: mrand.New(mrand.NewPCG(seed, 0x5eed))}
}

// front starts a recording endpoint in front of fake for replica, and
// returns the FCM endpoint to give that replica.
func (r *pushRecorder) front(t *testing.T, replica int, fake *sendertest.FakeFCM) string {
	base := strings.TrimSuffix(fake.Endpoint(), "/v1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.inFlight.Add(1)
		defer r.inFlight.Add(-1)
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return // the sender died mid-request: it never reached the provider
		}
		var m struct {
			Message struct {
				Token string `json:"token"`
				Data  struct {
					DeliveryID string `json:"delivery_id"`
					OpID       string `json:"op_id"`
				} `json:"data"`
			} `json:"message"`
		}
		_ = json.Unmarshal(body, &m) // a body the fake cannot read is one of its Problems
		r.mu.Lock()
		r.pushes = append(r.pushes, recordedPush{Order: len(r.pushes), Replica: replica, At: time.Now(), Token: m.Message.Token,
			DeliveryID: m.Message.Data.DeliveryID, OpID: m.Message.Data.OpID})
		delay := r.lo + time.Duration(r.rng.Int64N(int64(r.hi-r.lo)+1))
		r.mu.Unlock()
		answer := time.NewTimer(delay)
		defer answer.Stop()

		out, _ := http.NewRequestWithContext(context.WithoutCancel(req.Context()), http.MethodPost, base+req.URL.RequestURI(), bytes.NewReader(body))
		out.Header = req.Header.Clone()
		resp, err := r.client.Do(out)
		if err != nil {
			r.mu.Lock()
			r.forwardErrs = append(r.forwardErrs, err.Error())
			r.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		select {
		case <-answer.C:
		case <-req.Context().Done():
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// since returns a copy of the pushes recorded after the first n.
func (r *pushRecorder) since(n int) []recordedPush {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedPush(nil), r.pushes[min(max(n, 0), len(r.pushes)):]...)
}

// count is how many pushes were recorded so far.
func (r *pushRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

// forwardErrors returns the requests the recorder could not pass to a fake.
func (r *pushRecorder) forwardErrors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.forwardErrs...)
}

// receipt is one record of PUSHGO_RECEIPTS (schemas/delivery), restated:
// an outcome of the retry queue, or a batch of (operation, partition)
// summaries.
type receipt struct {
	Kind       string    `json:"kind"`
	ChannelID  string    `json:"channel_id"`
	OpID       string    `json:"op_id"`
	Seq        uint64    `json:"seq"`
	DeliveryID string    `json:"delivery_id"`
	DeviceKey  string    `json:"device_key"`
	Provider   string    `json:"provider"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason"`
	Attempts   int       `json:"attempts"`
	Summaries  []summary `json:"summaries"`
}

// summary is what one delivery partition did with one operation.
type summary struct {
	OpID      string            `json:"op_id"`
	Seq       uint64            `json:"seq"`
	Partition int               `json:"partition"`
	Audience  int               `json:"audience"`
	Sent      int               `json:"sent"`
	Failed    int               `json:"failed"`
	Retrying  int               `json:"retrying"`
	Failures  []json.RawMessage `json:"failures"`
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

// capped reports the first ten failures of one kind and counts the rest,
// so a broken run says what broke without thousands of lines.
type capped struct {
	t    *testing.T
	what string
	n    int
}

func (c *capped) Errorf(format string, args ...any) {
	c.t.Helper()
	c.n++
	if c.n <= 10 {
		c.t.Errorf(format, args...)
	}
}

// done reports how many were not shown.
func (c *capped) done() {
	c.t.Helper()
	if c.n > 10 {
		c.t.Errorf("... and %d more %s (%d in all)", c.n-10, c.what, c.n)
	}
}
