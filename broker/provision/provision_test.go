package provision_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// waitLog is a slog handler that hands each record's message to a channel.
type waitLog struct{ msgs chan string }

func (h *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *waitLog) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h *waitLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *waitLog) WithGroup(string) slog.Handler      { return h }

// TestEnsureWaitsForAPeer: on a three-node cluster whose third server has
// not come up yet, the streams' three replicas cannot be placed; one Ensure pass fails with an
// error Transient recognises, and EnsureWhenReady waits (saying so in its
// log) until the server is up, then creates every stream and bucket at
// three replicas; Await, meanwhile, waits for them too. A gateway started
// beside a cluster still forming used to exit on the first refusal.
func TestEnsureWaitsForAPeer(t *testing.T) {
	c := brokertest.StartCluster(t, brokertest.StartLate(2))
	o := streams.DefaultOptions()
	o.Replicas = brokertest.ClusterSize
	_, js := c.Conn(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pass, cancelPass := context.WithTimeout(ctx, 5*time.Second)
	err := provision.Ensure(pass, js, o)
	cancelPass()
	if err == nil || !provision.Transient(err) {
		t.Fatalf("one pass with a server missing: %v, want a transient refusal", err)
	}

	// A projector or pusher process waits for the streams (Await) through
	// the same refusals.
	awaitLog := &waitLog{msgs: make(chan string, 1)}
	awaited := make(chan error, 1)
	go func() { awaited <- provision.Await(ctx, js, []string{streams.Ops}, slog.New(awaitLog)) }()
	h := &waitLog{msgs: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- provision.EnsureWhenReady(ctx, js, o, slog.New(h)) }()
	for _, l := range []struct {
		log  *waitLog
		want string
		done chan error
	}{{h, "asking again", done}, {awaitLog, "waiting for a stream", awaited}} {
		select {
		case msg := <-l.log.msgs:
			if !strings.Contains(msg, l.want) {
				t.Fatalf("log %q, want %q", msg, l.want)
			}
		case err := <-l.done:
			t.Fatalf("returned %v with a server missing, want a wait (%q)", err, l.want)
		}
	}
	c.Restart(t, 2)
	if err := <-done; err != nil {
		t.Fatalf("EnsureWhenReady once the server is up: %v", err)
	}
	if err := <-awaited; err != nil {
		t.Fatalf("Await once the server is up: %v", err)
	}
	for _, s := range streams.AllStreams(o) {
		info, err := js.Stream(ctx, s.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", s.Name, err)
		}
		if got := info.CachedInfo().Config.Replicas; got != brokertest.ClusterSize {
			t.Errorf("stream %s: %d replicas", s.Name, got)
		}
	}
	for _, b := range streams.AllBuckets(o) {
		if _, err := js.KeyValue(ctx, b.Name); err != nil {
			t.Errorf("bucket %s: %v", b.Name, err)
		}
	}
}

// TestTransient: what a forming cluster answers is transient; what a
// broker will never accept is not.
func TestTransient(t *testing.T) {
	for code, want := range map[jetstream.ErrorCode]bool{10005: true, 10008: true, 10009: true, 10074: false, 10058: false} {
		err := &jetstream.APIError{ErrorCode: code, Code: 500, Description: "x"}
		if provision.Transient(err) != want {
			t.Errorf("error code %d: transient %v, want %v", code, !want, want)
		}
	}
}

// TestEnsureLeavesStreamsAsTheyAre: each stream the broker holds after
// Ensure has the settings its definition gives, as the broker stores them,
// so the next start updates nothing. A stream defined with no duplicate
// window was stored with the broker's default of two minutes, and updated
// at every start.
func TestEnsureLeavesStreamsAsTheyAre(t *testing.T) {
	br := brokertest.Start(t)
	ctx := context.Background()
	o := streams.DefaultOptions()
	if err := provision.Ensure(ctx, br.JS, o); err != nil {
		t.Fatal(err)
	}
	for _, def := range streams.AllStreams(o) {
		s, err := br.JS.Stream(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		if have := s.CachedInfo().Config; have.Duplicates != def.Duplicates || have.MaxAge != def.MaxAge || have.AllowDirect != def.AllowDirect {
			t.Errorf("%s is stored with duplicates %s, max age %s, direct %v; defined %s, %s, %v: Ensure updates it at every start",
				def.Name, have.Duplicates, have.MaxAge, have.AllowDirect, def.Duplicates, def.MaxAge, def.AllowDirect)
		}
		want := provision.StreamConfig(def, o).MaxMsgsPerSubject
		if have := s.CachedInfo().Config.MaxMsgsPerSubject; have != want {
			t.Errorf("%s is stored with %d messages a subject, defined %d: Ensure updates it at every start", def.Name, have, want)
		}
	}
}

// TestInboxKeepsADevicesLatestItems: Ensure gives an inbox stream made
// without a cap (a gateway before PUSHGO_INBOX_PER_DEVICE) the cap at the
// next start, trimming each device's oldest items past it, and from then
// on a device's new item past the cap drops its oldest; another device's
// items stay.
func TestInboxKeepsADevicesLatestItems(t *testing.T) {
	br := brokertest.Start(t, brokertest.NoEnsure())
	ctx := context.Background()
	o := streams.DefaultOptions()
	o.InboxPerDevice = 0
	if err := provision.Ensure(ctx, br.JS, o); err != nil {
		t.Fatal(err)
	}
	publish := func(device string, n int) {
		for i := range n {
			if _, err := br.JS.Publish(ctx, streams.InboxSubject(device), fmt.Appendf(nil, "%s-%d", device, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	items := func(device string) []string {
		var out []string
		s, err := br.JS.Stream(ctx, streams.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(0); ; {
			m, err := s.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(streams.InboxSubject(device)))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out, seq = append(out, string(m.Data)), m.Sequence
		}
	}
	publish("phone", 5)
	publish("tablet", 2)
	if got := items("phone"); len(got) != 5 {
		t.Fatalf("without a cap the phone's inbox holds %v", got)
	}

	o.InboxPerDevice = 3
	if err := provision.Ensure(ctx, br.JS, o); err != nil {
		t.Fatal(err)
	}
	if got := items("phone"); !slices.Equal(got, []string{"phone-2", "phone-3", "phone-4"}) {
		t.Fatalf("after the upgrade the phone's inbox holds %v, want its latest 3", got)
	}
	publish("phone", 1)
	if got := items("phone"); !slices.Equal(got, []string{"phone-3", "phone-4", "phone-0"}) {
		t.Fatalf("after one more item the phone's inbox holds %v, want its latest 3", got)
	}
	if got := items("tablet"); !slices.Equal(got, []string{"tablet-0", "tablet-1"}) {
		t.Fatalf("the tablet's inbox holds %v, want both its items", got)
	}
}

// TestEnsureRaisesBucketReplicas: a deployment provisioned at one replica
// and started again with three (PUSHGO_REPLICAS on a cluster) gets three
// replicas of every bucket, as of every stream: the buckets kept one, and
// the node that held a registry bucket was a single point of loss.
func TestEnsureRaisesBucketReplicas(t *testing.T) {
	c := brokertest.StartCluster(t, brokertest.NoEnsure())
	_, js := c.Conn(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := streams.DefaultOptions()
	o.Replicas = 1
	if err := provision.Ensure(ctx, js, o); err != nil {
		t.Fatal(err)
	}
	for _, b := range streams.AllBuckets(o) { // the premise: made with one
		if s, err := js.Stream(ctx, "KV_"+b.Name); err != nil || s.CachedInfo().Config.Replicas != 1 {
			t.Fatalf("bucket %s made with one replica: %v", b.Name, err)
		}
	}
	o.Replicas = brokertest.ClusterSize
	if err := provision.Ensure(ctx, js, o); err != nil {
		t.Fatal(err)
	}
	for _, b := range streams.AllBuckets(o) {
		s, err := js.Stream(ctx, "KV_"+b.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != brokertest.ClusterSize {
			t.Errorf("bucket %s: %d replicas after Ensure with %d", b.Name, got, brokertest.ClusterSize)
		}
	}
}
