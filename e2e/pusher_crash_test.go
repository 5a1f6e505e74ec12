package e2e

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// TestPusherSIGKILLDeliversEveryPushInOrder is the acceptance check of the
// pusher's delivery guarantee (issue 11): with three pusher replicas under
// a load of about 100,000 pushes, and replicas killed with SIGKILL at
// random points, one after the other,
//
//   - every (operation, device) reaches the provider at least once;
//   - each device's first copies arrive in log order, across all replicas;
//   - a push is sent again only because the replica that sent it was
//     killed before its partition's ack floor passed it: every duplicate is
//     of an operation above the ack floor of its device's partition read
//     right after that kill (the floor cannot move until the broker pins
//     another replica, PUSHGO_DELIVERY_FAILOVER later), sent first by the
//     killed replica;
//   - nothing is pushed that should not be: no operation to a device not
//     subscribed to its channel, none the test never sent.
//
// Process A is an ingest with the embedded broker; the pushers are
// connected to it. Half the devices are Android (FCM), half iOS (APNs).
// Each pusher sends FCM pushes to its own FakeFCM in the test process (same
// credentials), through one recorder that stamps every request with one
// arrival order across all replicas before passing it on, and APNs pushes
// to its own APNs front of the same recorder, which reads each HTTP/2
// connection's frames in order (an APNs device's pushes are pipelined on
// its connection, each written before the next starts, not answered:
// their arrival order is the one the provider sees); both answer 1-6 ms
// later, so every replica has sends in flight when it is killed.
// The kill points and the victims come from a seed, logged (set
// E2E_CRASH_SEED to replay one).
func TestPusherSIGKILLDeliversEveryPushInOrder(t *testing.T) {
	// Not parallel: six processes and 100,000 pushes take the machine's
	// two cores, and the other e2e tests' own bounds starved beside it.
	const (
		// Devices 3i are subscribed to channel A, 3i+1 to B, 3i+2 to both:
		// each channel has an audience of 80; 2 more devices have a route
		// and no subscription.
		devicesN     = 120
		unsubscribed = 2
		// Messages alternate between A and B: 1,250 × 80 = 100,000 pushes.
		messagesN = 1250
		clients   = 4
		// The clients spread the messages over ingestFor: the first kill
		// usually comes while they are still appended, the others after
		// the last, with a backlog of operations.
		ingestFor = 6 * time.Second
		kills     = 3
		failover  = 3 * time.Second
		// stallBound: after the last kill the test waits while the pushes
		// go on (a positive signal), and fails only when nothing has moved
		// for this long: on a loaded machine (make test runs the e2e tests
		// in parallel) settling can take minutes, which is no defect;
		// standing still is.
		stallBound = 60 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("E2E_CRASH_SEED %q: %v", s, err)
		}
	}
	t.Logf("seed %d (E2E_CRASH_SEED=%d replays the kill points and victims)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 0xc0ffee))
	t0 := time.Now()

	creds := fcmCredentials(t)
	apns := newAPNsProvider(t)
	rec := newPushRecorder(t, time.Millisecond, 6*time.Millisecond, seed)
	a := startIngest(t)
	bc := dialJS(t, a.natsURL)

	// The replicas: P1-P3, then one replacement per kill, each with its own
	// FakeFCM behind the recorder.
	type replica struct {
		n    int // P<n>, from 1
		g    *gateway
		fake *sendertest.FakeFCM
		kill int // the kill that ended it, from 1; 0 while it lives
	}
	var replicas []*replica
	start := func() *replica {
		t.Helper()
		r := &replica{n: len(replicas) + 1, fake: sendertest.NewFakeFCM(t)}
		env := append([]string{"PUSHGO_DELIVERY_FAILOVER=" + failover.String(), "PUSHGO_APNS_ENDPOINT=" + rec.apnsFront(t, r.n)}, apns.env...)
		r.g = startPusher(t, a, creds, rec.front(t, r.n, r.fake), env...)
		replicas = append(replicas, r)
		return r
	}
	live := func() []*gateway {
		gs := []*gateway{a}
		for _, r := range replicas {
			if r.kill == 0 {
				gs = append(gs, r.g)
			}
		}
		return gs
	}
	for range 3 {
		start()
	}
	bc.waitPullers(t, 3, 30*time.Second, live()...)

	// Channels, devices, subscriptions.
	suffix := randomHex(t, 4)
	password := "pusher-crash-" + randomHex(t, 8)
	channels := [2]string{createChannel(t, a, "pusher-crash-a", password), createChannel(t, a, "pusher-crash-b", password)}
	type device struct {
		key, token string
		apns       bool    // iOS, pushed through APNs; else Android, FCM
		subs       [2]bool // subscribed to channels[0], channels[1]
	}
	devs := make([]device, devicesN+unsubscribed)
	for i := range devs {
		devs[i].token = fmt.Sprintf("fcm-crash-%03d-%s", i, suffix)
		if devs[i].apns = i%2 == 1; devs[i].apns {
			devs[i].token = fmt.Sprintf("%s%056x", suffix, i) // 64 hex characters
		}
		if i < devicesN {
			devs[i].subs = [2]bool{i%3 != 1, i%3 != 0}
		}
	}
	var (
		errMu  sync.Mutex
		errs   []string
		setupW sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	failures := func() []string {
		errMu.Lock()
		defer errMu.Unlock()
		return slices.Clone(errs)
	}
	post := func(ctx context.Context, path string, body map[string]any) map[string]any {
		r, err := a.Do(ctx, http.MethodPost, path, mustJSON(nil, body), nil)
		if err != nil {
			fail("%s: %v", path, err)
			return nil
		}
		data, err := okAny(r)
		if err != nil {
			fail("%s: %v", path, err)
		}
		return data
	}
	setupCtx, setupCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer setupCancel()
	for w := range 8 {
		setupW.Go(func() {
			for i := w; i < len(devs); i += 8 {
				d := &devs[i]
				platform, channelType := "android", "fcm"
				if d.apns {
					platform, channelType = "ios", "apns"
				}
				data := post(setupCtx, "/device/register", map[string]any{"platform": platform})
				key, _ := data["device_key"].(string)
				if key == "" {
					fail("device %d: no device_key in %v", i, data)
					return
				}
				d.key = key
				post(setupCtx, "/channel/device", map[string]any{"device_key": key, "channel_type": channelType, "provider_token": d.token})
				for c, sub := range d.subs {
					if sub {
						post(setupCtx, "/channel/subscribe", map[string]any{"device_key": key, "channel_id": channels[c], "password": password})
					}
				}
			}
		})
	}
	setupW.Wait()
	if len(errs) > 0 {
		t.Fatalf("setup: %d errors, first: %s", len(errs), errs[0])
	}
	devOfToken := map[string]*device{}
	devOfKey := map[string]*device{}
	var audience [2][]*device
	for i := range devs {
		d := &devs[i]
		devOfToken[d.token], devOfKey[d.key] = d, d
		for c, sub := range d.subs {
			if sub {
				audience[c] = append(audience[c], d)
			}
		}
	}
	pushesN := (messagesN/2)*len(audience[0]) + (messagesN-messagesN/2)*len(audience[1])
	setup := time.Since(t0)

	// Load: clients send the messages, message i to channel i%2, not
	// before ingestFor × i/messagesN into the load.
	opIDs := make([]string, messagesN)
	for i := range opIDs {
		opIDs[i] = fmt.Sprintf("pusher-crash-%s-%04d", suffix, i)
	}
	// The load's bound is only a backstop: the kills below wait for pushes
	// (a positive signal) and fail after 30 s without one. A fixed 60 s
	// failed a fresh clone's make test once, its 1,250 messages slowed
	// tenfold by the parallel load.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		acked    atomic.Int64
		ackedAll atomic.Int64 // ns from loadStart to the last acknowledgement
		load     sync.WaitGroup
	)
	loadStart := time.Now()
	for c := range clients {
		load.Go(func() {
			for i := c; i < messagesN && ctx.Err() == nil; i += clients {
				if wait := time.Until(loadStart.Add(ingestFor * time.Duration(i) / messagesN)); wait > 0 {
					time.Sleep(wait)
				}
				data := post(ctx, "/message", map[string]any{
					"channel_id": channels[i%2], "password": password, "op_id": opIDs[i],
					"title": fmt.Sprintf("message %d", i), "body": "pusher crash test",
				})
				if data == nil {
					return
				}
				if data["op_id"] != opIDs[i] {
					fail("message %s: answered op_id %v", opIDs[i], data["op_id"])
					return
				}
				if acked.Add(1) == messagesN {
					ackedAll.Store(int64(time.Since(loadStart)))
				}
			}
		})
	}

	// The kills: kill k comes once the provider has seen a random share of
	// the pushes, in [5%, 15%] (usually while messages are still being
	// appended), [35%, 50%] and [65%, 80%] (after the last one, with a
	// backlog), and takes a random live replica among those that pushed
	// lately (one that owns partitions). Right after it, before any
	// takeover can happen, the test reads every partition's ack floor;
	// then it starts a replacement, so two replicas or more always live.
	type kill struct {
		victim   *replica
		at       time.Time
		pushes   int // recorded before the kill
		acked    int64
		floors   [deliveryPartitions]uint64
		floorsIn time.Duration // from the SIGKILL to the floors read
	}
	var killed []*kill
	windows := [kills][2]float64{{0.05, 0.15}, {0.35, 0.50}, {0.65, 0.80}}
	for k, w := range windows {
		at := int((w[0] + (w[1]-w[0])*rng.Float64()) * float64(pushesN))
		progress, progressAt := rec.count(), time.Now()
		for rec.count() < at {
			failIfExited(t, live())
			if n := rec.count(); n > progress {
				progress, progressAt = n, time.Now()
			} else if time.Since(progressAt) > 30*time.Second {
				t.Fatalf("no push for 30s before kill %d: %d of %d pushes, %d of %d messages acknowledged; errors %v; partitions:%s",
					k+1, n, pushesN, acked.Load(), messagesN, failures(), bc.partitionsReport())
			}
			time.Sleep(2 * time.Millisecond)
		}
		recent := map[int]bool{}
		for _, p := range rec.since(rec.count() - 2000) {
			recent[p.Replica] = true
		}
		var candidates []*replica
		for _, r := range replicas {
			if r.kill == 0 && recent[r.n] {
				candidates = append(candidates, r)
			}
		}
		if len(candidates) == 0 {
			t.Fatalf("kill %d: no live replica pushed in the last 2000 pushes", k+1)
		}
		// The pins before the kill: a floor read while its partition is
		// still pinned to the same replica, or to none, was read before any
		// takeover (a new owner is pinned before it resets the partition).
		// Generous bounds: on a loaded machine a read can take seconds; the
		// pins, not the time, say whether a floor was read before a takeover.
		fctx, fcancel := context.WithTimeout(context.Background(), 15*time.Second)
		before, err := bc.partitions(fctx)
		if err != nil {
			fcancel()
			t.Fatalf("kill %d: %v", k+1, err)
		}
		kl := &kill{victim: candidates[rng.IntN(len(candidates))], pushes: rec.count(), acked: acked.Load()}
		kl.at = time.Now()
		kl.victim.g.kill()
		kl.victim.kill = k + 1
		after, err := bc.partitions(fctx)
		fcancel()
		kl.floorsIn = time.Since(kl.at)
		if err != nil {
			t.Fatalf("kill %d: ack floors not read (%s after the SIGKILL): %v", k+1, kl.floorsIn, err)
		}
		for i, st := range after {
			kl.floors[i] = st.Floor
			if st.Pin != "" && st.Pin != before[i].Pin {
				// Taken over before its floor was read (a loaded machine):
				// the new owner may have moved it already. The floor read
				// just before the kill is a lower bound of the one at the
				// kill, so the duplicate check stays sound, only looser.
				kl.floors[i] = before[i].Floor
				t.Logf("kill %d: %s was pinned to another replica before its floor was read (%s after the SIGKILL); using its floor from before the kill, %d",
					k+1, deliverConsumer(i), kl.floorsIn, before[i].Floor)
			}
		}
		killed = append(killed, kl)
		t.Logf("kill %d: SIGKILL of P%d (%s) %s into the load, after %d pushes and %d messages acknowledged; partitions %s after it:%s",
			k+1, kl.victim.n, kl.victim.g.name, kl.at.Sub(loadStart).Round(time.Millisecond), kl.pushes, kl.acked,
			kl.floorsIn.Round(time.Millisecond), describe(after))
		start()
	}
	load.Wait()
	if len(errs) > 0 {
		for _, e := range errs[:min(len(errs), 10)] {
			t.Errorf("load: %s", e)
		}
		t.FailNow()
	}
	if n := acked.Load(); n != messagesN {
		t.Fatalf("%d of %d messages acknowledged", n, messagesN)
	}
	loadDone := time.Duration(ackedAll.Load())

	// The operations as the log holds them.
	type op struct {
		seq     uint64
		id      string
		channel int
	}
	opBySeq := map[uint64]*op{}
	var ops []*op
	inLog := byOpID(readOps(t, a.natsURL))
	for i, id := range opIDs {
		msgs := inLog[id]
		if len(msgs) != 1 {
			t.Fatalf("op_id %s appears %d times in %s", id, len(msgs), opsStream)
		}
		o := &op{seq: msgs[0].Seq, id: id, channel: i % 2}
		if msgs[0].ChannelID != channels[o.channel] {
			t.Fatalf("op_id %s is on channel %s, want %s", id, msgs[0].ChannelID, channels[o.channel])
		}
		opBySeq[o.seq] = o
		ops = append(ops, o)
	}
	logState, err := bc.streamState(context.Background(), opsStream)
	if err != nil {
		t.Fatal(err)
	}

	// Wait until every pair has reached the provider and nothing is left
	// to do: every partition's ack floor is the log's last operation (no
	// owner, present or future, sends anything again), the retry queue is
	// empty and no push is in flight at the recorder.
	type pair struct {
		seq uint64
		dev string
	}
	var (
		got      []recordedPush
		state    string
		settled  bool
		allAt    time.Duration // every pair pushed at least once, from the last kill
		lastKill = killed[len(killed)-1].at
		moved    = time.Now() // the last time anything moved
		lastSeen = -1
		floors   uint64
	)
	seen := make(map[string]struct{}, pushesN)
	for {
		for _, p := range rec.since(len(got)) {
			got = append(got, p)
			seen[p.DeliveryID] = struct{}{}
		}
		n := len(seen)
		if n >= pushesN && allAt == 0 {
			allAt = time.Since(lastKill)
		}
		settled = n >= pushesN && rec.pending() == 0
		state = fmt.Sprintf("%d of %d pairs pushed, %d pushes in flight", n, pushesN, rec.pending())
		qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
		parts, err := bc.partitions(qctx)
		if err != nil {
			settled, state = false, fmt.Sprintf("%s, %v", state, err)
		} else {
			state += fmt.Sprintf(", the log ends at %d; partitions:%s", logState.LastSeq, describe(parts))
			var sum uint64
			for _, st := range parts {
				settled = settled && st.Floor == logState.LastSeq
				sum += st.Floor
			}
			if sum != floors {
				floors, moved = sum, time.Now()
			}
		}
		if n != lastSeen {
			lastSeen, moved = n, time.Now()
		}
		info, err := bc.consumerInfo(qctx, deliveriesStream, senderConsumer)
		switch {
		case err != nil || info == nil:
			settled, state = false, fmt.Sprintf("%s, consumer %s: %v", state, senderConsumer, err)
		default:
			state += fmt.Sprintf(", retry queue pending %d ack-pending %d", info.NumPending, info.NumAckPending)
			settled = settled && info.NumPending == 0 && info.NumAckPending == 0
		}
		qcancel()
		if settled || time.Since(moved) > stallBound {
			break
		}
		failIfExited(t, live())
		time.Sleep(100 * time.Millisecond)
	}
	settleAt := time.Since(lastKill)

	// Every push recorded is of one of the test's operations, to a device
	// subscribed to its channel, with the delivery id of the pair.
	copies := map[pair][]int{} // indexes into got, in arrival order
	wrong := &capped{t: t, what: "pushes that should not exist"}
	for i, p := range got {
		s, key, _ := strings.Cut(p.DeliveryID, ":")
		seq, _ := strconv.ParseUint(s, 10, 64)
		d, o := devOfToken[p.Token], opBySeq[seq]
		switch {
		case d == nil:
			wrong.Errorf("P%d pushed to token %q, which no device of the test has: %+v", p.Replica, p.Token, p)
		case d.key != key:
			wrong.Errorf("P%d pushed delivery %s to the token of device %s: %+v", p.Replica, p.DeliveryID, d.key, p)
		case o == nil:
			wrong.Errorf("P%d pushed delivery %s: not an operation the test sent: %+v", p.Replica, p.DeliveryID, p)
		case o.id != p.OpID:
			wrong.Errorf("P%d pushed delivery %s with op_id %q; the log has %q at %d", p.Replica, p.DeliveryID, p.OpID, o.id, seq)
		case !d.subs[o.channel]:
			wrong.Errorf("P%d pushed %s (channel %s) to device %s, which is not subscribed to it", p.Replica, o.id, channels[o.channel], d.key)
		default:
			k := pair{seq, key}
			copies[k] = append(copies[k], i)
		}
	}
	wrong.done()
	if t.Failed() {
		t.FailNow()
	}
	var lost []pair
	for _, o := range ops {
		for _, d := range audience[o.channel] {
			if len(copies[pair{o.seq, d.key}]) == 0 {
				lost = append(lost, pair{o.seq, d.key})
			}
		}
	}
	if !settled || len(lost) > 0 {
		for i, p := range lost {
			if i == 10 {
				t.Errorf("... and %d more", len(lost)-10)
				break
			}
			t.Errorf("never pushed: %s (seq %d) to device %s", opBySeq[p.seq].id, p.seq, p.dev)
		}
		t.Fatalf("not settled %s after the last kill, nothing moved for %s: %s", time.Since(lastKill).Round(time.Second), stallBound, state)
	}

	// Per device, the first copy of each operation arrives in log order,
	// whichever replica sent it; and each replica sent a device's
	// operations in log order (a replica sends a pair at most once).
	byDevice := map[string][]int{}
	for i, p := range got {
		_, key, _ := strings.Cut(p.DeliveryID, ":")
		byDevice[key] = append(byDevice[key], i)
	}
	order := &capped{t: t, what: "pushes out of order"}
	for key, idx := range byDevice {
		var lastFirst uint64
		seen := map[uint64]bool{}
		lastBy := map[int]uint64{}
		for _, i := range idx {
			p := got[i]
			s, _, _ := strings.Cut(p.DeliveryID, ":")
			seq, _ := strconv.ParseUint(s, 10, 64)
			if seq <= lastBy[p.Replica] {
				order.Errorf("device %s: P%d pushed seq %d after seq %d (arrival %d)", key, p.Replica, seq, lastBy[p.Replica], p.Order)
			}
			lastBy[p.Replica] = seq
			if seen[seq] {
				continue
			}
			seen[seq] = true
			if seq < lastFirst {
				order.Errorf("device %s: seq %d first arrived (P%d, arrival %d) after seq %d: out of log order", key, seq, p.Replica, p.Order, lastFirst)
			}
			lastFirst = seq
		}
	}
	order.done()

	// A pair arrives again only after the replica that sent the copy
	// before was killed, and only when the operation was above the ack
	// floor of the device's partition read right after that kill. The
	// bound of a kill is the pairs the killed replica had sent above those
	// floors: what its partitions' next owners redo.
	victimKill := map[int]int{} // replica -> index into killed
	for k, kl := range killed {
		victimKill[kl.victim.n] = k
	}
	dups := make([]int, len(killed))
	boundK := make([]int, len(killed))
	dupPairs := 0
	unbounded := &capped{t: t, what: "pushes sent again without a kill to explain them"}
	for pr, idx := range copies {
		part := partitionOf(pr.dev, deliveryPartitions)
		for j, i := range idx {
			p := got[i]
			if k, ok := victimKill[p.Replica]; ok && pr.seq > killed[k].floors[part] {
				boundK[k]++
			}
			if j == 0 {
				continue
			}
			prev := got[idx[j-1]]
			k, ok := victimKill[prev.Replica]
			switch {
			case !ok:
				unbounded.Errorf("%s (seq %d) pushed to %s by P%d (arrival %d) and again by P%d (arrival %d): P%d was never killed",
					opBySeq[pr.seq].id, pr.seq, pr.dev, prev.Replica, prev.Order, p.Replica, p.Order, prev.Replica)
			case pr.seq <= killed[k].floors[part]:
				unbounded.Errorf("%s (seq %d) pushed to %s by P%d and again by P%d after kill %d: at or below partition %d's ack floor %d at the kill",
					opBySeq[pr.seq].id, pr.seq, pr.dev, prev.Replica, p.Replica, k+1, part, killed[k].floors[part])
			default:
				dups[k]++
			}
		}
		if len(idx) > 1 {
			dupPairs++
		}
	}
	unbounded.done()

	// What the recorder saw is what the fakes received, replica by replica,
	// and every push was a valid, authorized FCM request.
	if e := rec.forwardErrors(); len(e) > 0 {
		t.Errorf("%d pushes not passed to a fake, first: %s", len(e), e[0])
	}
	perReplica := map[int]int{}
	seenByFakes := &capped{t: t, what: "differences between the recorder and the fakes"}
	for _, r := range replicas {
		want := map[string][]string{}
		for _, p := range got {
			if p.Replica == r.n {
				want[p.Token] = append(want[p.Token], p.DeliveryID)
				perReplica[r.n]++
			}
		}
		for _, d := range devs {
			if d.apns { // the APNs front is the provider itself
				continue
			}
			var ids []string
			for _, o := range r.fake.Received(d.token) {
				ids = append(ids, o.Data["delivery_id"])
				if len(o.Problems) > 0 || !o.Authorized {
					seenByFakes.Errorf("P%d's provider: push %s: problems %v, authorized %v", r.n, o.Data["delivery_id"], o.Problems, o.Authorized)
				}
			}
			slices.Sort(ids)
			w := want[d.token]
			slices.Sort(w)
			if !slices.Equal(ids, w) {
				seenByFakes.Errorf("P%d's provider received %d pushes for %s, the recorder %d", r.n, len(ids), d.token, len(w))
			}
		}
	}
	for _, p := range got {
		if p.APNs && !p.Authorized {
			seenByFakes.Errorf("P%d's APNs push %s came without a bearer token", p.Replica, p.DeliveryID)
		}
	}
	seenByFakes.done()

	// No delivery needed the retry queue (every answer was OK, in time):
	// every push went through its partition, in order.
	if st, err := bc.streamState(context.Background(), deliveriesStream); err != nil {
		t.Error(err)
	} else if st.LastSeq != 0 {
		t.Errorf("%s stored %d retry tasks; every answer was OK", deliveriesStream, st.LastSeq)
	}

	// The summaries the projector folds into /send_status say, for each
	// (operation, partition) with a share of the audience, that the whole
	// share was sent (the last one written counts: a partition redone after
	// a kill writes its summary again).
	sums := &capped{t: t, what: "wrong summaries"}
	last := map[[2]uint64]summary{}
	for _, r := range readReceipts(t, a.natsURL) {
		if r.Kind != "summary" {
			sums.Errorf("receipt of kind %q: %+v", r.Kind, r)
			continue
		}
		for _, s := range r.Summaries {
			last[[2]uint64{s.Seq, uint64(s.Partition)}] = s
		}
	}
	for _, o := range ops {
		var share [deliveryPartitions]int
		for _, d := range audience[o.channel] {
			share[partitionOf(d.key, deliveryPartitions)]++
		}
		for part, n := range share {
			s, ok := last[[2]uint64{o.seq, uint64(part)}]
			switch {
			case n == 0 && ok:
				sums.Errorf("%s: summary of partition %d, which has no share: %+v", o.id, part, s)
			case n > 0 && !ok:
				sums.Errorf("%s: no summary of partition %d (share %d)", o.id, part, n)
			case n > 0 && (s.Sent != n || s.Failed != 0 || s.Retrying != 0 || s.Audience != len(audience[o.channel])):
				sums.Errorf("%s: summary of partition %d %+v: want sent %d of audience %d", o.id, part, s, n, len(audience[o.channel]))
			}
		}
	}
	sums.done()

	t.Logf("setup %s; %d messages to 2 channels acknowledged in %s; %d pairs; 3 replicas, %d kills",
		setup.Round(time.Millisecond), messagesN, loadDone.Round(time.Millisecond), pushesN, len(killed))
	for k, kl := range killed {
		// When the victim's partitions went on: the first push by another
		// replica after the kill to a device of a partition the victim had
		// pushed to.
		parts := map[int]bool{}
		for _, p := range got[:kl.pushes] {
			if p.Replica == kl.victim.n {
				_, key, _ := strings.Cut(p.DeliveryID, ":")
				parts[partitionOf(key, deliveryPartitions)] = true
			}
		}
		resumed := "never"
		for _, p := range got[kl.pushes:] {
			_, key, _ := strings.Cut(p.DeliveryID, ":")
			if p.Replica != kl.victim.n && parts[partitionOf(key, deliveryPartitions)] && p.At.After(kl.at) {
				resumed = p.At.Sub(kl.at).Round(time.Millisecond).String()
				break
			}
		}
		t.Logf("kill %d (P%d, floors %v): %d pairs pushed again (bound: %d pairs P%d had sent above the floors); its partitions went on %s after it",
			k+1, kl.victim.n, kl.floors, dups[k], boundK[k], kl.victim.n, resumed)
	}
	var counts []string
	for _, r := range replicas {
		counts = append(counts, fmt.Sprintf("P%d %d", r.n, perReplica[r.n]))
	}
	t.Logf("every pair pushed %s after the last kill, settled after %s; %d pushes (%s), %d pairs pushed more than once",
		allAt.Round(time.Millisecond), settleAt.Round(time.Millisecond), len(got), strings.Join(counts, ", "), dupPairs)
	if dupPairs == 0 {
		t.Error("no pair was pushed twice: no kill caught a replica with pushes above its floors")
	}
}
