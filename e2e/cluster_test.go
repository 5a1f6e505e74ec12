package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestCluster runs compose.yaml's topology as local processes (three
// nats-server nodes on deploy/nats/nats.conf; two ingest, two projector
// and two pusher processes with their compose command and environment,
// every stream and bucket at three replicas) and takes its nodes down one
// way after another, under a write load through both ingest replicas whose
// clients retry a 503 with the same op_id, as a real client does. After
// each fault: every operation that got a 200 is in the log exactly once,
// no request got a 500 (or any answer but 200 and 503), and the figures
// (operations acknowledged, lost, duplicates, the window of 503s) are
// printed. At the end the projector replicas hold identical state and a
// device subscribed before the first fault was pushed every message.
//
// The phases share one cluster (starting one costs ~15 s): a failure in
// one leaves the cluster in a state the next does not expect, so they run
// in order and stop at the first failure.
func TestCluster(t *testing.T) {
	t.Parallel()
	fake := sendertest.NewFakeFCM(t)
	c := startCluster(t)
	c.startAll(fake.Endpoint(), fcmCredentials(t))
	ingest := c.services["ingest"]
	a, b := ingest[0], ingest[1]
	js := dialJS(t, c.url)
	for _, s := range []string{opsStream, "KV_PUSHGO_DEVICES", "KV_PUSHGO_SUBSCRIPTIONS", "KV_PUSHGO_CHANNELS"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := streamInfo(ctx, js.js, s)
		cancel()
		if err != nil || info.Config.Replicas != 3 {
			t.Fatalf("stream %s: replicas %v, err %v: the compose environment asks for 3", s, info.Config.Replicas, err)
		}
	}

	// A channel the load writes to, and a device on it through the other
	// replica: every acknowledged message must reach it.
	load := chanCred{Password: "cluster-" + randomHex(t, 8)}
	load.ID = createChannel(t, a, "cluster-load", load.Password)
	token := "fcm-cluster-" + randomHex(t, 4)
	dev := postOK(t, b, "/device/register", map[string]any{"platform": "android"})["device_key"].(string)
	postOK(t, b, "/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": token})
	postOK(t, b, "/channel/subscribe", map[string]any{"device_key": dev, "channel_id": load.ID, "password": load.Password})

	var loads []*faultLoad
	pass := func(name string, fault func(l *clusterLoad)) bool {
		return t.Run(name, func(t *testing.T) {
			l := startClusterLoad(t, c, load, name)
			loads = append(loads, l.loads...)
			fault(l)
			l.stopAndCheck(t)
		})
	}

	ok := t.Run("follower-reads", func(t *testing.T) { followerReads(t, c) }) && pass("ops-leader-SIGKILL", func(l *clusterLoad) {
		l.waitAcks(200)
		leader := c.node(c.leader(js, opsStream))
		killedAt := time.Now()
		c.kill(leader)
		next := c.waitLeaderElected(js, opsStream, leader.name, 30*time.Second)
		l.t.Logf("%s (leading %s) killed; %s elected within %s", leader.name, opsStream, next, time.Since(killedAt).Round(time.Millisecond))
		// A pusher replica dies too: the other takes its partitions.
		c.services["pusher"][0].kill()
		l.waitAcksAfter(time.Now(), 200)
		c.restart(leader)
		c.waitReplicasCurrent(js, opsStream, 2*time.Minute)
		l.t.Logf("%s restarted and current again", leader.name)
		l.waitAcksAfter(time.Now(), 100)
	}) && pass("ops-leader-SIGSTOP-10s", func(l *clusterLoad) {
		l.waitAcks(200)
		leader := c.node(c.leader(js, opsStream))
		c.pause(leader)
		stoppedAt := time.Now()
		next := c.waitLeaderElected(js, opsStream, leader.name, 30*time.Second)
		l.t.Logf("%s (leading %s) stopped; %s elected within %s", leader.name, opsStream, next, time.Since(stoppedAt).Round(time.Millisecond))
		l.waitAcksAfter(time.Now(), 100)
		time.Sleep(time.Until(stoppedAt.Add(10 * time.Second))) // the fault's length, not a wait for an outcome
		c.resume(leader)
		// Catching up under the load (and, in make test, beside the race
		// detector's tests): since every push's item is stored in the
		// replicated inbox too, a fresh clone's run once needed more than
		// a minute (PUSHGO_OPS 13,253 entries behind at its end).
		for _, s := range append([]string{opsStream}, registryBuckets...) {
			c.waitReplicasCurrent(js, s, 2*time.Minute)
		}
		l.t.Logf("%s resumed after %s and current again", leader.name, time.Since(stoppedAt).Round(time.Millisecond))
		l.waitAcksAfter(time.Now(), 100)
	}) && t.Run("registry-leader-SIGKILL", func(t *testing.T) {
		registryLeaderKilled(t, c, js, load, fake)
	})
	if !ok {
		return
	}

	// Every node is back: reads through every ingest replica agree, the
	// projector replicas end identical, and every message was pushed.
	for _, n := range c.nodes {
		if n.exited() {
			c.restart(n)
		}
	}
	c.waitReplicasCurrent(js, opsStream, 60*time.Second)
	last := streamLastSeq(t, c.url)
	projectors := c.services["projector"]
	waitApplied(t, a, last, 40, 60*time.Second, projectors...)
	waitApplied(t, b, last, 40, 60*time.Second, projectors...)
	histA, histB := historyOpIDs(t, a, load), historyOpIDs(t, b, load)
	if fmt.Sprint(histA) != fmt.Sprint(histB) {
		t.Errorf("the channel's history differs between the ingest replicas: %d op_ids through A, %d through B", len(histA), len(histB))
	}
	for _, l := range loads {
		l.checkReadable(t, a)
	}
	var acked []string
	for _, l := range loads {
		l.mu.Lock()
		acked = append(acked, l.acked...)
		l.mu.Unlock()
	}
	waitFor(t, "every acknowledged message pushed to the device", 60*time.Second, func() bool {
		return len(pushedTitles(fake, token, acked)) == 0
	})
	dups := 0
	seen := map[string]int{}
	for _, o := range fake.Received(token) {
		if seen[o.Title]++; seen[o.Title] == 2 {
			dups++
		}
	}
	t.Logf("pushes: %d acknowledged messages all pushed to the device subscribed before the faults (%d pushes in all, %d messages pushed more than once)",
		len(acked), len(fake.Received(token)), dups)
	// The replicas' stores are compared whole, the receipts fold's records
	// (send status) too, and /readyz's projector_applied covers the
	// operations only: stop the pushers, whose summaries are the receipts
	// (a clean stop flushes them), and wait for both replicas to fold the
	// last one.
	for _, p := range c.services["pusher"] {
		if !p.exited() { // one was killed in the first phase
			stopClean(t, p)
		}
	}
	lastReceipt := lastSeqOf(t, c.url, receiptsStream)
	for _, p := range projectors {
		waitReceiptsApplied(t, p, lastReceipt, 60*time.Second)
	}
	for _, p := range projectors {
		stopClean(t, p)
	}
	// The two replicas share compose's projection volume, each in its slot
	// (PUSHGO_PROJECTION_SLOTS): the first started took projection-0.
	if projectors[0].cfg.DataDir != projectors[1].cfg.DataDir {
		t.Errorf("the projector replicas have data directories %s and %s: compose.yaml's volume is one", projectors[0].cfg.DataDir, projectors[1].cfg.DataDir)
	}
	imgs := []storeImage{openImageAt(t, filepath.Join(projectors[0].cfg.DataDir, "projection-0"), []string{load.ID}),
		openImageAt(t, filepath.Join(projectors[1].cfg.DataDir, "projection-1"), []string{load.ID})}
	if imgs[0].Applied != last || imgs[1].Applied != last {
		t.Errorf("projectors applied %d and %d; the log's last sequence is %d", imgs[0].Applied, imgs[1].Applied, last)
	}
	sameImage(t, "projector replica 1 vs 2", imgs[0], imgs[1])
	t.Logf("projector replicas identical at sequence %d (%d snapshot and index entries)", last, len(imgs[0].Dump))
}

// pushedTitles returns the titles of want the device of token has not
// been pushed yet.
func pushedTitles(fake *sendertest.FakeFCM, token string, want []string) []string {
	got := map[string]bool{}
	for _, o := range fake.Received(token) {
		got[o.Title] = true
	}
	var missing []string
	for _, op := range want {
		if !got["fault load "+op] {
			missing = append(missing, op)
		}
	}
	return missing
}

// registryLeaderKilled: the node leading the device and subscription
// buckets is killed; registering devices and subscribing them keeps
// working after the election (retrying 503s), and what was registered
// before is kept: devices registered before and after are both pushed.
func registryLeaderKilled(t *testing.T, c *cluster, js *jsConn, ch chanCred, fake *sendertest.FakeFCM) {
	a, b := c.services["ingest"][0], c.services["ingest"][1]
	// The previous phase's node may still be catching up on some bucket:
	// a client retries its 503 like any other.
	reg := chanCred{Password: "registry-" + randomHex(t, 8)}
	reg.ID = retry503(t, a, "/channel/create", map[string]any{"channel_name": "cluster-registry", "password": reg.Password})["channel_id"].(string)
	var tokens, devices []string
	register := func(g *gateway, n int) {
		t.Helper()
		for i := range n {
			tok := fmt.Sprintf("fcm-reg-%s-%d", randomHex(t, 3), i)
			dev := retry503(t, g, "/device/register", map[string]any{"platform": "android"})["device_key"].(string)
			retry503(t, g, "/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": tok})
			retry503(t, g, "/channel/subscribe", map[string]any{"device_key": dev, "channel_id": reg.ID, "password": reg.Password})
			tokens = append(tokens, tok)
			devices = append(devices, dev)
		}
	}
	register(a, 10)
	register(b, 10)
	// The registry is several buckets, each with its own leader: the node
	// leading most of them dies.
	leading := map[string][]string{}
	for _, bucket := range registryBuckets {
		name := c.leader(js, bucket)
		leading[name] = append(leading[name], bucket)
	}
	var leader *natsNode
	for _, n := range c.nodes {
		if leader == nil || len(leading[n.name]) > len(leading[leader.name]) {
			leader = n
		}
	}
	killedAt := time.Now()
	c.kill(leader)
	for _, bucket := range leading[leader.name] {
		next := c.waitLeaderElected(js, bucket, leader.name, 30*time.Second)
		t.Logf("%s: %s killed; %s elected within %s", bucket, leader.name, next, time.Since(killedAt).Round(time.Millisecond))
	}
	t.Logf("registry leaders before the kill: %v", leading)
	register(a, 10)
	register(b, 10)
	title := "registry check " + randomHex(t, 4)
	retry503(t, b, "/message", map[string]any{"channel_id": reg.ID, "password": reg.Password, "title": title})
	waitFor(t, "the message on all 40 devices, registered before and after the kill", 60*time.Second, func() bool {
		for _, tok := range tokens {
			found := false
			for _, o := range fake.Received(tok) {
				found = found || o.Title == title
			}
			if !found {
				return false
			}
		}
		return true
	})
	t.Logf("registry: 20 devices registered before the kill and 20 after, every one subscribed and pushed")
	c.restart(leader)
	for _, bucket := range registryBuckets {
		c.waitReplicasCurrent(js, bucket, 60*time.Second)
	}
	// Each push's item waits in its device's inbox (written by the
	// pushers, read and deleted by ingest, each under its role's
	// permissions on the cluster) until the app acks it: the item of the
	// message sent during the failover too, which the pusher publishes
	// again until it is stored when the inbox stream's leader was on the
	// killed node (until 4 December it was given up at once, and a fresh
	// clone's run met that), and of a message sent once the cluster is
	// whole again.
	c.waitReplicasCurrent(js, "PUSHGO_INBOX", 60*time.Second)
	inboxTitle := "inbox check " + randomHex(t, 4)
	retry503(t, b, "/message", map[string]any{"channel_id": reg.ID, "password": reg.Password, "title": inboxTitle})
	for _, dev := range devices {
		var failover, whole string
		// The item is stored beside the push: it may land an instant after.
		waitFor(t, "device "+dev+": both pushed messages in its inbox", 60*time.Second, func() bool {
			for _, it := range retry503(t, a, "/v2/messages/pull", map[string]any{"device_key": dev})["items"].([]any) {
				item := it.(map[string]any)
				switch item["payload"].(map[string]any)["title"] {
				case title:
					failover = item["delivery_id"].(string)
				case inboxTitle:
					whole = item["delivery_id"].(string)
				}
			}
			return failover != "" && whole != ""
		})
		if n := retry503(t, b, "/v2/messages/ack", map[string]any{"device_key": dev, "delivery_ids": []string{failover, whole}})["removed_count"]; fmt.Sprint(n) != "2" {
			t.Fatalf("device %s: ack of %s and %s removed %v", dev, failover, whole, n)
		}
		// The failover's item may come back once: a partition taken over
		// sends its pushes again, and their items are stored again, maybe
		// after this ack (the apps ack it again). The other's may not.
		ackedAt := time.Now()
		for _, it := range retry503(t, a, "/v2/messages/pull", map[string]any{"device_key": dev})["items"].([]any) {
			if it.(map[string]any)["delivery_id"] == whole {
				t.Fatalf("device %s: %s is still in its inbox after its ack (answered at %s); the inbox stream's leader holds %s",
					dev, whole, ackedAt.Format(time.RFC3339Nano), inboxOnLeader(t, js, dev))
			}
		}
	}
}

// inboxOnLeader says which items of device's inbox the inbox stream's
// leader holds, with when each was stored: for a failure's message, to
// tell an item stored again after its ack (a push sent again) from a
// replica that had not applied the ack's delete.
func inboxOnLeader(t *testing.T, js *jsConn, device string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := leaderread.Open(ctx, js.js, streams.Inbox)
	if err != nil {
		return err.Error()
	}
	var held []string
	err = r.SubjectOnLeader(ctx, streams.InboxSubject(device), 0, time.Time{}, func(m *jetstream.RawStreamMsg) error {
		held = append(held, fmt.Sprintf("message %d of operation %s at %s", m.Sequence, m.Header.Get(streams.HeaderInboxSeq), m.Time.Format(time.RFC3339Nano)))
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d: %v", len(held), held)
}

// registryBuckets are the buckets device registration and subscriptions
// read and write.
var registryBuckets = []string{"KV_PUSHGO_CHANNELS", "KV_PUSHGO_DEVICES", "KV_PUSHGO_DEVICE_CHANNELS",
	"KV_PUSHGO_PROVIDER_TOKENS", "KV_PUSHGO_SUBSCRIPTIONS"}

// retry503 posts body to path through g until the answer is not 503 (a
// client's retry while the cluster elects a leader) and requires a 200.
func retry503(t *testing.T, g *gateway, path string, body map[string]any) map[string]any {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := g.Do(ctx, http.MethodPost, path, mustJSON(t, body), nil)
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer but 503 within 45 s: %v %v", path, r, err)
		}
		if err != nil || r.Status == http.StatusServiceUnavailable {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		data, err := okAny(r)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return data
	}
}

// clusterLoad is a fault load through each ingest replica.
type clusterLoad struct {
	t     *testing.T
	loads []*faultLoad
	stop  chan struct{}
	done  sync.WaitGroup
}

func startClusterLoad(t *testing.T, c *cluster, ch chanCred, name string) *clusterLoad {
	l := &clusterLoad{t: t, stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	for i, g := range c.services["ingest"] {
		fl := newFaultLoad(g, ch, fmt.Sprintf("%s-%c", strings.ToLower(name), 'a'+i))
		l.loads = append(l.loads, fl)
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			fl.run(ctx, 3, l.stop)
		}()
	}
	t.Cleanup(func() {
		l.halt()
		cancel()
	})
	return l
}

func (l *clusterLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

// waitAcks waits for n acknowledgements through each replica.
func (l *clusterLoad) waitAcks(n int) { l.waitAcksAfter(time.Time{}, n) }

// waitAcksAfter waits for n acknowledgements after at through each
// replica: the load goes on through both.
func (l *clusterLoad) waitAcksAfter(at time.Time, n int) {
	l.t.Helper()
	waitFor(l.t, fmt.Sprintf("%d acknowledgements through each ingest replica", n), 90*time.Second, func() bool {
		for _, fl := range l.loads {
			if fl.acksAfter(at) < n {
				return false
			}
		}
		return true
	})
}

// stopAndCheck stops the load and checks each replica's operations in the
// log; it prints the figures.
func (l *clusterLoad) stopAndCheck(t *testing.T) {
	t.Helper()
	l.halt()
	for i, fl := range l.loads {
		t.Logf("through ingest replica %d:", i+1)
		fl.check(t, fl.g.natsURL)
	}
}

// followerReads: a thousand times, an entity is created through one
// ingest replica and read at once through the other (each replica talks
// to whichever node it connected to, and a read may be answered by a
// follower that has not applied the write yet), in turn: a device
// registered through A is given its provider token through B (the
// registry buckets), a channel created through A is subscribed to through
// B, a Thing created through A is read through B (the log and the
// projector's read-your-writes barrier). None may answer 404.
func followerReads(t *testing.T, c *cluster) {
	a, b := c.services["ingest"][0], c.services["ingest"][1]
	const rounds, workers = 1000, 8
	var (
		mu     sync.Mutex
		false4 = map[string]int{}
		errs   []string
	)
	fail := func(what string, r *apiResp, err error) {
		mu.Lock()
		defer mu.Unlock()
		if r != nil && r.Status == http.StatusNotFound {
			false4[what]++
			return
		}
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf("%s: %v %v", what, r, err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	post := func(g *gateway, path string, body map[string]any) (*apiResp, map[string]any, error) {
		r, err := g.Do(ctx, http.MethodPost, path, mustJSON(t, body), nil)
		if err != nil {
			return r, nil, err
		}
		data, err := okAny(r)
		return r, data, err
	}
	things := chanCred{Password: "follower-" + randomHex(t, 8)}
	things.ID = createChannel(t, a, "follower-things", things.Password)
	started := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < rounds; i += workers {
				switch i % 3 {
				case 0:
					_, data, err := post(a, "/device/register", map[string]any{"platform": "android"})
					if err != nil {
						fail("register through A", nil, err)
						continue
					}
					dev := data["device_key"].(string)
					if r, _, err := post(b, "/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": "fcm-follower-" + dev}); err != nil {
						fail("set through B the provider token of a device registered through A", r, err)
					}
				case 1:
					pw := fmt.Sprintf("follower-%d", i)
					_, data, err := post(a, "/channel/create", map[string]any{"channel_name": pw, "password": pw})
					if err != nil {
						fail("create a channel through A", nil, err)
						continue
					}
					_, dev, err := post(a, "/device/register", map[string]any{"platform": "android"})
					if err != nil {
						fail("register through A", nil, err)
						continue
					}
					if r, _, err := post(b, "/channel/subscribe", map[string]any{"device_key": dev["device_key"], "channel_id": data["channel_id"], "password": pw}); err != nil {
						fail("subscribe through B to a channel created through A", r, err)
					}
				case 2:
					_, data, err := post(a, "/thing/create", map[string]any{"channel_id": things.ID, "password": things.Password, "title": "follower", "observed_at": time.Now().Unix()})
					if err != nil {
						fail("create a thing through A", nil, err)
						continue
					}
					if r, _, err := post(b, "/thing/get", map[string]any{"channel_id": things.ID, "password": things.Password, "thing_id": data["thing_id"]}); err != nil {
						fail("get through B a thing created through A", r, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	n := 0
	for what, k := range false4 {
		t.Errorf("%d false 404s: %s", k, what)
		n += k
	}
	t.Logf("follower reads: %d rounds (create through A, read at once through B: a device's token, a subscription, a Thing, in turn) in %s, %d false 404s",
		rounds, time.Since(started).Round(time.Millisecond), n)
}
