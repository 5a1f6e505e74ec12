package gateway

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
)

// A subscription that falls behind and drops messages is logged with its
// subject and how many it dropped: "slow consumer" alone does not say which
// of a process's subscriptions lost messages.
func TestASlowConsumerIsLoggedWithItsSubject(t *testing.T) {
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	b := brokertest.Start(t, brokertest.NoEnsure())
	nc, _ := b.ConnAs(t, broker.RoleAdmin, nats.ErrorHandler(asyncErrorLogger(log, broker.RoleIngest)))

	release := make(chan struct{})
	defer close(release)
	sub, err := nc.Subscribe("slow.subject", func(*nats.Msg) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(1, -1); err != nil {
		t.Fatal(err)
	}
	for range 4 { // one held by the handler, one pending, the rest dropped
		if err := nc.Publish("slow.subject", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "slow consumer") {
		if time.Now().After(deadline) {
			t.Fatalf("no slow consumer logged; the log:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	line := out.String()
	for _, want := range []string{"subject=slow.subject", "role=ingest", "dropped="} {
		if !strings.Contains(line, want) {
			t.Errorf("the warning lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "dropped=0 ") {
		t.Errorf("the warning counts no dropped message:\n%s", line)
	}
}
