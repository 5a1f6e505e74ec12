package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestBrokerLocked: the embedded broker's port (PUSHGO_NATS_LISTEN) is
// locked, also in private mode. A local process without credentials is
// refused (it read every password hash, device and provider token and
// could append operations before); the credentials are generated into
// the data directory, owner-only and printed nowhere; a process of the
// same data directory connects with its target's; and a pusher's
// credentials cannot append to the operations log nor read the channels'
// password hashes.
func TestBrokerLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startGateway(t, gwConfig{DataDir: dir, Token: "private-" + randomHex(t, 16)})
	ch := createChannel(t, a, "locked", "locked-channel-pw")

	if nc, err := nats.Connect(a.natsURL, nats.Timeout(5*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect to %s without credentials: %v, want an authorization violation", a.natsURL, err)
	}

	// A pusher of the same data directory, told nothing of credentials.
	p := startGateway(t, gwConfig{DataDir: dir, Target: "pusher", NATSURL: a.natsURL, Env: []string{"PUSHGO_NATS_CREDS="}})
	p.waitReady(20 * time.Second)

	for _, role := range []string{"all", "ingest", "projector", "pusher", "admin"} {
		f := filepath.Join(dir, "credentials", role+".nk")
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a file of mode 0600", f, st, err)
		}
		seed, _ := os.ReadFile(f)
		for _, g := range []*gateway{a, p} {
			if s := strings.TrimSpace(string(seed)); s == "" || strings.Contains(g.output.String(), s) {
				t.Fatalf("the %s seed is empty or in the output of %s", role, g.name)
			}
		}
	}

	creds, err := nats.NkeyOptionFromSeed(credsFile(t, a.natsURL, "pusher"))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(a.natsURL, creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("connect with the pusher's credentials: %v", err)
	}
	defer nc.Close()
	forged := "pushgo.op." + ch + ".message.forged"
	hashes := "$JS.API.DIRECT.GET." + channelsStream + ".$KV.PUSHGO_CHANNELS." + ch
	for _, subject := range []string{forged, hashes} {
		if err := nc.Publish(subject, []byte(`{"forged":true}`)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+subject+`"`) {
				t.Fatalf("publish to %s as the pusher: %v, want a permissions violation", subject, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("publish to %s as the pusher: no permissions violation", subject)
		}
	}
	for _, m := range readOps(t, a.natsURL) {
		if m.Subject == forged {
			t.Fatalf("the pusher's forged operation is in the log at sequence %d", m.Seq)
		}
	}
	if out := p.output.String(); strings.Contains(out, "permissions violation") {
		t.Fatalf("the pusher's own work met a permissions violation:\n%s", out)
	}
}
