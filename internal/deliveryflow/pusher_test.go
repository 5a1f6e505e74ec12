package deliveryflow_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/oauth2"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

const pw = "correct-horse"

type env struct {
	t    *testing.T
	api  *apitest.Client
	apns *sendertest.FakeAPNs
	fcm  *sendertest.FakeFCM
	b    *brokertest.Broker
	push *pusher.Pusher
	// partitions is the pushers' delivery partitions.
	partitions int
	// start starts another pusher with setup's configuration, changed by
	// more (applied after setup's own).
	start func(more ...func(*pusher.Config)) *pusher.Pusher
	// startOn is start over nc (a replica's own connection).
	startOn func(nc *nats.Conn, more ...func(*pusher.Config)) *pusher.Pusher
}

// setup runs a broker, ingest over HTTP, and a pusher whose senders are the
// real APNs and FCM senders pointed at local fake providers. opts change
// the pusher's configuration.
func setup(t *testing.T, opts ...func(*pusher.Config)) *env {
	t.Helper()
	b := brokertest.Start(t, brokertest.NoEnsure())
	nc := b.NC
	ctx := context.Background()
	svc, err := ingest.Start(ctx, nc, ingest.Config{Streams: streams.DefaultOptions(), Argon2: registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })

	e := &env{t: t, api: apitest.New(srv.URL), b: b, apns: sendertest.NewFakeAPNs(t), fcm: sendertest.NewFakeFCM(t)}
	as, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: "ABC123DEFG", TeamID: "TEAM123456", Topic: "dev.pushgo.app",
		Endpoint: e.apns.URL(), NewHTTPClient: e.apns.NewClient, SendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fcm.New(fcm.Options{ProjectID: "pushgo-test", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test"}),
		Endpoint: e.fcm.Endpoint(), SendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.startOn = func(nc *nats.Conn, more ...func(*pusher.Config)) *pusher.Pusher {
		cfg := pusher.Config{
			Senders: map[payload.Provider]sender.Sender{payload.APNs: as, payload.FCM: fs},
			Policy:  sender.Policy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond, Attempts: 5},
			Lanes:   16, SendTimeout: 2 * time.Second,
		}
		for _, o := range append(opts[:len(opts):len(opts)], more...) {
			o(&cfg)
		}
		e.partitions = cmp.Or(cfg.Partitions, pusher.DefaultPartitions) // a new deployment's
		p, err := pusher.Start(ctx, nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	e.start = func(more ...func(*pusher.Config)) *pusher.Pusher { return e.startOn(b.NC, more...) }
	e.push = e.start()
	return e
}

// post sends body to path and returns the data of a 200 success.
func (e *env) post(path string, body map[string]any) map[string]any {
	e.t.Helper()
	return apitest.MustOK(e.t, e.api.Post(e.t, path, body)).Data
}

// device registers a device, binds its push route and subscribes it.
func (e *env) device(platform, channelType, token, ch string) string {
	key := e.post("/device/register", map[string]any{"platform": platform})["device_key"].(string)
	e.post("/channel/device", map[string]any{"device_key": key, "channel_type": channelType, "provider_token": token})
	e.post("/channel/subscribe", map[string]any{"device_key": key, "channel_id": ch, "password": pw})
	return key
}

// withChannel returns a body builder for channel ch: its credentials and
// the given key, value pairs.
func withChannel(ch string) func(kv ...any) map[string]any {
	return func(kv ...any) map[string]any {
		m := map[string]any{"channel_id": ch, "password": pw}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var apnsToken = strings.Repeat("ab", 32)

const fcmToken = "fcm-token-android-1:APA91b"

// TestSeedEventReachesBothPlatforms: the seed event's create, update and
// close reach an iOS and an Android device, in order, with the section-8
// keys, the severity mapping and one collapse id per event.
func TestSeedEventReachesBothPlatforms(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "deploys", "password": pw})["channel_id"].(string)
	e.device("ios", "apns", apnsToken, ch)
	e.device("android", "fcm", fcmToken, ch)

	with := withChannel(ch)
	ev := e.post("/event/create", with("title", "Production deployment", "status", "running", "message", "Deployment started",
		"severity", "normal", "event_time", 1713750000000, "started_at", 1713750000000, "attrs", map[string]any{"service": "api", "revision": "8f3c2a1"}))["event_id"].(string)
	e.post("/event/update", with("event_id", ev, "status", "publishing", "message", "Image pushed, publishing release",
		"severity", "high", "event_time", 1713750300000, "attrs", map[string]any{"progress": 0.75}))
	closeOp := e.post("/event/close", with("event_id", ev, "status", "success", "message", "Production deployment completed",
		"severity", "low", "event_time", 1713750600000, "ended_at", 1713750600000, "attrs", map[string]any{"progress": 1}))["op_id"].(string)

	for _, p := range []struct {
		name  string
		prov  sendertest.Provider
		token string
	}{{"apns", e.apns, apnsToken}, {"fcm", e.fcm, fcmToken}} {
		waitFor(t, p.name+" to receive 3 pushes", func() bool { return len(p.prov.Received(p.token)) >= 3 })
		got := p.prov.Received(p.token)
		if len(got) != 3 {
			t.Fatalf("%s received %d pushes", p.name, len(got))
		}
		wantStates := []string{"ONGOING", "ONGOING", "CLOSED"}
		// normal, high → high priority; low → normal. On FCM a normal
		// Event too: the Android app shows an Event only at high or
		// critical (payload.androidShows).
		wantHigh := []bool{p.name == "apns", true, false}
		for i, o := range got {
			if len(o.Problems) > 0 {
				t.Errorf("%s push %d: protocol problems %v", p.name, i, o.Problems)
			}
			if o.Data["event_state"] != wantStates[i] || o.Data["event_id"] != ev || o.Data["entity_type"] != "event" ||
				o.Data["channel_id"] != ch || o.Data["schema_version"] != "1" || o.Data["delivery_id"] == "" {
				t.Errorf("%s push %d data: %v", p.name, i, o.Data)
			}
			// FCM pushes are data-only (the Android app builds the
			// notification), so only APNs says "alert" itself.
			if o.High != wantHigh[i] || (p.name == "apns" && !o.Alert) || o.Background {
				t.Errorf("%s push %d: high=%v alert=%v background=%v", p.name, i, o.High, o.Alert, o.Background)
			}
			// One collapse id an event on APNs; none on FCM (offline, it
			// keeps one message a key and four keys a device).
			if (p.name == "apns") != (o.CollapseID != "") || o.CollapseID != got[0].CollapseID {
				t.Errorf("%s push %d: collapse id %q, first %q", p.name, i, o.CollapseID, got[0].CollapseID)
			}
		}
		if p.name == "apns" {
			levels := []string{got[0].InterruptionLevel, got[1].InterruptionLevel, got[2].InterruptionLevel}
			if fmt.Sprint(levels) != "[active time-sensitive passive]" {
				t.Errorf("interruption levels %v", levels)
			}
		}
	}
	// Each delivery of the close ends "sent" in its partition's summary.
	waitFor(t, "sent summaries of the close", func() bool {
		sent, audience := 0, 0
		for _, r := range receipts(t, e) {
			for _, s := range r.Summaries {
				if s.OpID == closeOp {
					sent += s.Sent
					audience = s.Audience
				}
			}
		}
		return sent == 2 && audience == 2
	})
}

// waitPartitionsPassed waits until every delivery partition's ack floor
// has passed the last operation in the log: every operation so far has
// been taken, its pushes sent and settled, and none can be delivered to a
// pusher again. A test that proves a push absent (or not repeated) checks
// after this, not after a sleep.
func waitPartitionsPassed(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ops, err := e.b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ops.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	for {
		behind, seen := 0, 0
		lister := ops.ListConsumers(ctx)
		for ci := range lister.Info() {
			if strings.HasPrefix(ci.Name, pusher.PartitionConsumerPrefix) {
				seen++
				if ci.AckFloor.Stream < last {
					behind++
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d delivery partitions never passed sequence %d", behind, seen, last)
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		if seen == e.partitions && behind == 0 { // every partition made, and past last
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receipts reads PUSHGO_RECEIPTS.
func receipts(t *testing.T, e *env) []delivery.Receipt {
	t.Helper()
	ctx := context.Background()
	s, err := e.b.JS.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	var out []delivery.Receipt
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var r delivery.Receipt
		_ = json.Unmarshal(m.Data, &r)
		out = append(out, r)
	}
	return out
}
