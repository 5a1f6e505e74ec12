package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestOperationNobodyIsPushedWritesNoReceipt: a message to a channel with
// no subscriber costs no broker write besides itself: once every delivery
// partition has passed it (its floor acknowledged, which a partition does
// only after its summary, if any, is stored), PUSHGO_RECEIPTS holds the
// summary of a message to a subscribed device sent at the same time and
// nothing of the first; and the first's /send_status still answers: 200,
// accepted, no delivery. Before, partition 0 wrote a summary of every
// operation with no audience, which the projector then folded.
func TestOperationNobodyIsPushedWritesNoReceipt(t *testing.T) {
	fake := sendertest.NewFakeFCM(t)
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	creds, _ := sendertest.ServiceAccount(t, "pushgo-test")
	cfg.FCMCredentialsFile, cfg.FCMProjectID, cfg.FCMEndpoint = creds, "pushgo-test", fake.Endpoint()
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"quiet","password":"correct-horse"}`)
	quiet := data(t, s, m)["channel_id"].(string)
	s, _, m = post(t, base, "/channel/create", `{"channel_name":"ops","password":"correct-horse"}`)
	ops := data(t, s, m)["channel_id"].(string)
	s, _, m = post(t, base, "/device/register", `{"platform":"android"}`)
	dev := data(t, s, m)["device_key"].(string)
	s, _, m = post(t, base, "/channel/device", `{"device_key":"`+dev+`","channel_type":"fcm","provider_token":"tok-android-1"}`)
	data(t, s, m)
	s, _, m = post(t, base, "/channel/subscribe", `{"device_key":"`+dev+`","channel_id":"`+ops+`","password":"correct-horse"}`)
	data(t, s, m)

	s, _, m = post(t, base, "/message", `{"channel_id":"`+quiet+`","password":"correct-horse","title":"nobody listens","op_id":"nobody-1"}`)
	data(t, s, m)
	s, _, m = post(t, base, "/message", `{"channel_id":"`+ops+`","password":"correct-horse","title":"somebody listens","op_id":"somebody-1"}`)
	data(t, s, m)

	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opsStream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := opsStream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq

	// Every partition has passed both messages: each exists (they are
	// made as the pusher starts) and has its floor at the log's end.
	partitions := cfg.NewDeliveryPartitions()
	for {
		behind, seen := 0, 0
		lister := opsStream.ListConsumers(ctx)
		for ci := range lister.Info() {
			if strings.HasPrefix(ci.Name, pusher.PartitionConsumerPrefix) {
				seen++
				if ci.AckFloor.Stream < last {
					behind++
				}
			}
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		if behind == 0 && seen == partitions {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d delivery partitions never passed sequence %d", behind, last)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var summaries []delivery.Summary
	rs, err := js.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	rinfo, err := rs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := rinfo.State.FirstSeq; seq <= rinfo.State.LastSeq && rinfo.State.Msgs > 0; seq++ {
		msg, err := rs.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var r delivery.Receipt
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind != delivery.KindSummary || r.OpID != "" {
			t.Errorf("receipt of kind %q for op %q: %s", r.Kind, r.OpID, msg.Data)
		}
		summaries = append(summaries, r.Summaries...)
	}
	somebody := 0
	for _, sm := range summaries {
		switch sm.OpID {
		case "somebody-1":
			somebody++
		default:
			t.Errorf("a summary of %s (channel %s, audience %d): only the message with a subscriber has one", sm.OpID, sm.ChannelID, sm.Audience)
		}
	}
	if somebody != 1 {
		t.Fatalf("%d summaries of the message to the subscribed device, want 1: %+v", somebody, summaries)
	}

	api := apitest.New(base)
	r := api.Get(t, "/send_status/nobody-1?channel_id="+quiet, nil)
	var st struct {
		Data delivery.SendStatus `json:"data"`
	}
	if r.Status != 200 || json.Unmarshal(r.Body, &st) != nil {
		t.Fatalf("send status of the message nobody is pushed: %d %s", r.Status, r.Body)
	}
	if st.Data.OpID != "nobody-1" || st.Data.Status != delivery.StatusAccepted || st.Data.Deliveries != (delivery.Counts{}) ||
		st.Data.EntityType != "message" || st.Data.AcceptedAt == 0 {
		t.Fatalf("send status of the message nobody is pushed: %s", r.Body)
	}
}
