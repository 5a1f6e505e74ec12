package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// apnsProvider is what the pusher processes need to send to the recorder's
// APNs fronts: a token-auth key and the root that signs the fronts'
// certificate (SSL_CERT_FILE: Go's system roots on Linux).
type apnsProvider struct {
	env []string // PUSHGO_APNS_* and SSL_CERT_*, without the endpoint
}

const apnsTopic = "dev.pushgo.e2e"

func newAPNsProvider(t *testing.T) *apnsProvider {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(keyFile, sendertest.APNsKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every front has httptest's certificate: one root for all.
	roots := filepath.Join(dir, "roots.pem")
	probe := sendertest.NewFrameAPNs(t, func(sendertest.FrameRequest) time.Duration { return 0 })
	if err := os.WriteFile(roots, probe.RootsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &apnsProvider{env: []string{
		"PUSHGO_APNS_KEY_FILE=" + keyFile, "PUSHGO_APNS_KEY_ID=E2EKEY1234", "PUSHGO_APNS_TEAM_ID=E2ETEAM123",
		"PUSHGO_APNS_TOPIC=" + apnsTopic, "SSL_CERT_FILE=" + roots, "SSL_CERT_DIR=" + dir,
	}}
}

// apnsFront starts an APNs for replica (sendertest.FrameAPNs: each HTTP/2
// connection's frames read in order), which records every request when its
// last frame arrives, in the recorder's one order across every replica:
// the order the provider received them in, which an HTTP/2 server running
// a handler per stream cannot show. Each is answered 200 after the
// recorder's random delay, out of order, so a replica always has pushes in
// flight. It returns the endpoint (PUSHGO_APNS_ENDPOINT).
func (r *pushRecorder) apnsFront(t *testing.T, replica int) string {
	t.Helper()
	front := sendertest.NewFrameAPNs(t, func(req sendertest.FrameRequest) time.Duration {
		var body struct {
			DeliveryID string `json:"delivery_id"`
			OpID       string `json:"op_id"`
		}
		_ = json.Unmarshal(req.Body, &body) // a body that does not decode is a push the checks find wrong
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pushes = append(r.pushes, recordedPush{Order: len(r.pushes), Replica: replica, At: time.Now(), Token: req.Token,
			DeliveryID: body.DeliveryID, OpID: body.OpID, APNs: true, Authorized: strings.HasPrefix(req.Authorization, "bearer ")})
		return r.lo + time.Duration(r.rng.Int64N(int64(r.hi-r.lo)+1))
	})
	r.mu.Lock()
	r.apnsFronts = append(r.apnsFronts, front)
	r.mu.Unlock()
	return front.URL()
}

// pending is the pushes received by the recorder's fronts and not yet
// answered.
func (r *pushRecorder) pending() int64 {
	n := r.inFlight.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.apnsFronts {
		n += f.Pending()
	}
	return n
}
