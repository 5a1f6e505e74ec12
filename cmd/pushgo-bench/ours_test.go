package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestDeliveryPartitionsFlag: -delivery-partitions sets the delivery
// partitions of the gateway a row starts (the broker then holds that many
// partition consumers), out-of-range values are refused, and without it
// the gateway keeps its own default.
func TestDeliveryPartitionsFlag(t *testing.T) {
	for _, bad := range []string{"-1", "65"} {
		if _, err := parseFlags([]string{"-phases", "write", "-delivery-partitions", bad}); err == nil {
			t.Errorf("-delivery-partitions %s accepted", bad)
		}
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-phases", "write", "-delivery-partitions", "1"}, 1},
		{[]string{"-phases", "write", "-delivery-partitions", "3"}, 3},
		// The bench's gateway runs every service: a new deployment's count
		// for a single node.
		{[]string{"-phases", "write"}, pusher.SingleNodePartitions},
	} {
		o, err := parseFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := partitionConsumers(t, o); got != tc.want {
			t.Errorf("%v: %d partition consumers, want %d", tc.args, got, tc.want)
		}
	}
}

// TestInboxPerDeviceFlag: -inbox-per-device sets the inbox cap of the
// gateways the bench starts (0: none), values under -1 are refused, and
// without it they keep the gateway's default.
func TestInboxPerDeviceFlag(t *testing.T) {
	if _, err := parseFlags([]string{"-phases", "delivery", "-inbox-per-device", "-2"}); err == nil {
		t.Error("-inbox-per-device -2 accepted")
	}
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{[]string{"-phases", "delivery", "-inbox-per-device", "10000"}, 10_000},
		{[]string{"-phases", "delivery", "-inbox-per-device", "0"}, 0},
		{[]string{"-phases", "delivery"}, streams.DefaultInboxPerDevice},
	} {
		o, err := parseFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.inboxPerDevice(); got != tc.want {
			t.Errorf("%v: inbox cap %d, want %d", tc.args, got, tc.want)
		}
	}
}

// partitionConsumers starts the gateway a row of o would (its broker
// listening, so the test can ask it) and counts its partition consumers.
func partitionConsumers(t *testing.T, o *options) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := gateway.Defaults()
	cfg.NATSListen, cfg.Target = "127.0.0.1:0", o.target
	tg, err := launchGateway(ctx, o, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	opts, err := broker.Remote{Creds: broker.CredentialsFile(filepath.Join(tg.dir, "credentials"), broker.RoleAdmin)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(tg.gw.NATSURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	l := s.ListConsumers(ctx)
	for info := range l.Info() {
		if strings.HasPrefix(info.Name, pusher.PartitionConsumerPrefix) {
			n++
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
