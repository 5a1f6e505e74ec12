package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
)

// TestDiskFull: the file system under the binary's broker store (a 32 MiB
// tmpfs mounted on <data dir>/jetstream; PUSHGO_MAX_STORE far above it)
// fills. Writes answer 507 store_full without Retry-After (at once, but
// for one the full disk may have left unanswered, which waits out the
// append timeout and is 503 with its op_id, as any publish unanswered;
// its retry is 507), /readyz answers 507 store_full naming
// the disk, pushgo_store_full is 1. Space is freed and the process, not
// restarted, is ready again: the refused operations, retried with their
// op_ids, are taken, and every acknowledged operation is in the log
// exactly once and readable. Before, every write waited 5 s for a 503
// "retry in 1 s", /readyz said ready, and writes kept failing after space
// was freed until a restart. Skipped (by MountSmallDisk) where a tmpfs
// cannot be mounted: not root.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	disk := brokertest.MountSmallDisk(t, filepath.Join(dir, "jetstream"), 32<<20)
	g := startGateway(t, gwConfig{DataDir: dir})
	c := chanCred{Password: "disk-full-" + randomHex(t, 8)}
	c.ID = createChannel(t, g, "disk-full", c.Password)
	l := newFaultLoad(g, c, "disk")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 20 {
		if !l.one(ctx, fmt.Sprintf("disk-before-%d", i)) {
			t.Fatal("writes before the disk filled were not acknowledged")
		}
	}

	brokertest.FillDisk(t, disk, 0)
	var refused []string
	for i := range 6 {
		op := fmt.Sprintf("disk-full-%d", i)
		start := time.Now()
		r, err := g.Do(ctx, http.MethodPost, "/message", mustJSON(t, map[string]any{
			"channel_id": c.ID, "password": c.Password, "op_id": op, "title": "full", "body": "disk full",
		}), nil)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("message %s: %v", op, err)
		}
		if i == 0 && r.Status == http.StatusServiceUnavailable {
			// The publish the full disk left unanswered: retried with its
			// op_id, it is refused as not stored.
			mustFail(t, r, http.StatusServiceUnavailable, "append_unavailable")
			start = time.Now()
			if r, err = g.Do(ctx, http.MethodPost, "/message", mustJSON(t, map[string]any{
				"channel_id": c.ID, "password": c.Password, "op_id": op, "title": "full", "body": "disk full",
			}), nil); err != nil {
				t.Fatalf("message %s again: %v", op, err)
			}
			took = time.Since(start)
		}
		mustFail(t, r, http.StatusInsufficientStorage, "store_full")
		if ra := r.Header.Get("Retry-After"); ra != "" {
			t.Errorf("store_full answer has Retry-After %s", ra)
		}
		if took > time.Second {
			t.Errorf("%s answered after %s with the disk full: want at once", op, took.Round(time.Millisecond))
		}
		t.Logf("%s: %d %s in %s", op, r.Status, r.Envelope.Code(), took.Round(time.Millisecond))
		refused = append(refused, op)
	}
	ready := waitStatus(t, g, "/readyz", http.StatusInsufficientStorage, 10*time.Second)
	if !strings.Contains(ready, `"error_code":"store_full"`) || !strings.Contains(ready, "disk") || !strings.Contains(ready, filepath.Join(dir, "jetstream")) {
		t.Errorf("/readyz with the disk full does not say store_full naming the disk: %s", ready)
	}
	if _, metrics := getPath(t, g, "/metrics"); !strings.Contains(metrics, "\npushgo_store_full 1\n") {
		t.Errorf("/metrics with the disk full lacks pushgo_store_full 1")
	}

	brokertest.FreeDisk(t, disk)
	freedAt := time.Now()
	waitStatus(t, g, "/readyz", http.StatusOK, 30*time.Second)
	t.Logf("ready %s after space was freed", time.Since(freedAt).Round(time.Millisecond))
	if _, metrics := getPath(t, g, "/metrics"); !strings.Contains(metrics, "\npushgo_store_full 0\n") {
		t.Errorf("/metrics after space was freed lacks pushgo_store_full 0")
	}
	for _, op := range refused {
		if !l.one(ctx, op) {
			t.Fatalf("refused %s was not taken after space was freed", op)
		}
	}
	for i := range 5 {
		if !l.one(ctx, fmt.Sprintf("disk-after-%d", i)) {
			t.Fatal("writes after space was freed were not acknowledged")
		}
	}
	l.check(t, g.natsURL)
	waitApplied(t, g, streamLastSeq(t, g.natsURL), 1, 30*time.Second)
	l.checkReadable(t, g)
}
