package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProjectorSIGKILLEqualsRebuild kills the projector process with
// SIGKILL in the middle of a randomized workload, restarts it on the same
// data directory, and checks that once caught up its projection is byte for
// byte what a clean fold from sequence 1 produces, in a fresh directory and
// with PUSHGO_REBUILD=true on the killed replica's directory: projections
// are disposable and resuming after a crash neither loses nor repeats an
// operation.
func TestProjectorSIGKILLEqualsRebuild(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	dirB := t.TempDir()
	b1 := startProjector(t, a, dirB)
	waitServed(t, a, 20*time.Second, b1)

	var chans []chanCred
	var chanIDs []string
	for i := range 3 {
		c := chanCred{Password: "rebuild-" + randomHex(t, 8)}
		c.ID = createChannel(t, a, "rebuild-"+string(rune('a'+i)), c.Password)
		chans, chanIDs = append(chans, c), append(chanIDs, c.ID)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	// 4 workers × 45 operations; the kill comes once 50 are acknowledged
	// (a count, not a time: make test's parallel load slows the workload
	// several-fold), so at least 50 come before it and about 130 after.
	const perWorker, killAfter = 45, 50
	w := newWorkload(a, workloadConfig{
		Name: "rb", Channels: chans, Workers: 4, Ops: perWorker, Seed: seed,
		Things: 15, Events: 15, Deletes: 3, Closes: 6,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- w.run(ctx) }()

	// SIGKILL the projector while it folds, keep writing, restart it on the
	// same directory while the workload still runs.
	for w.ackedCount() < killAfter {
		select {
		case n := <-done:
			t.Fatalf("the workload ended after %d operations, before the kill: %v", n, w.failures())
		case <-time.After(5 * time.Millisecond):
		}
	}
	killedAt := streamLastSeq(t, a.natsURL)
	b1.kill()
	// Writes go on while the projector is down: restart it once 10 more
	// are acknowledged (a count, like the kill's trigger).
	for downFrom := w.ackedCount(); w.ackedCount() < downFrom+10; {
		select {
		case n := <-done:
			t.Fatalf("the workload ended after %d operations, before the restart: %v", n, w.failures())
		case <-time.After(5 * time.Millisecond):
		}
	}
	b2 := startProjector(t, a, dirB)
	acked := <-done
	for _, f := range w.failures() {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	last := streamLastSeq(t, a.natsURL)
	t.Logf("%d operations acknowledged; SIGKILL at about sequence %d; stream's last sequence %d", acked, killedAt, last)
	if uint64(acked) != last {
		t.Fatalf("%d operations acknowledged but PUSHGO_OPS's last sequence is %d", acked, last)
	}
	if killedAt < 50 || killedAt+50 > last {
		t.Fatalf("the kill was not in the middle of the workload (sequence %d of %d)", killedAt, last)
	}

	// B catches up and serves what the model says.
	waitApplied(t, a, last, 1, 30*time.Second, b2)
	// The restart resumed from the killed process's store, not from scratch
	// (otherwise this would be a second rebuild, not a crash recovery).
	if m := startedApplied.FindStringSubmatch(b2.output.String()); m == nil {
		t.Errorf("%s did not log its starting position (msg=\"projector started\" applied=N)", b2.name)
	} else if m[1] == "0" {
		t.Errorf("%s restarted after SIGKILL from applied=0: nothing the killed process committed survived", b2.name)
	} else {
		t.Logf("restarted replica resumed after sequence %s", m[1])
	}
	w.verifyReads(t, a, "restarted replica")
	stopClean(t, b2)

	// C: a clean fold from sequence 1 in a fresh directory.
	dirC := t.TempDir()
	c := startProjector(t, a, dirC)
	waitApplied(t, a, last, 1, 30*time.Second, c)
	// B again on its directory, beside C: a plain restart folds nothing new.
	b3 := startProjector(t, a, dirB)
	waitLog(t, b3, "pushgo serving", 20*time.Second)
	if m := startedApplied.FindStringSubmatch(b3.output.String()); m == nil || m[1] != strconv.FormatUint(last, 10) {
		t.Errorf("%s, a plain restart, started at %v, want applied=%d (its store as it stopped)", b3.name, m, last)
	}
	waitApplied(t, a, last, 40, 30*time.Second, b3, c)
	stopClean(t, b3)
	stopClean(t, c)

	imgB := openImage(t, dirB, chanIDs)
	imgC := openImage(t, dirC, chanIDs)
	if imgC.Applied != last {
		t.Errorf("clean rebuild: Applied() %d, want the stream's last sequence %d", imgC.Applied, last)
	}
	sameImage(t, "SIGKILLed and resumed replica vs clean fold", imgB, imgC)
	w.checkImageAgainstModel(t, imgC)
	checkHistoryAgainstStream(t, readOps(t, a.natsURL), imgC)
	t.Logf("projection: %d snapshot and index entries, applied %d", len(imgC.Dump), imgC.Applied)

	// PUSHGO_REBUILD=true on B's directory: deleted and folded again. A
	// marker file in the old directory shows the rebuild started afresh.
	marker := filepath.Join(projectionDir(dirB), "e2e-rebuild-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b4 := startProjector(t, a, dirB, "PUSHGO_REBUILD=true")
	waitApplied(t, a, last, 1, 30*time.Second, b4)
	stopClean(t, b4)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("PUSHGO_REBUILD=true left the old projection directory in place (marker: %v)", err)
	}
	imgR := openImage(t, dirB, chanIDs)
	sameImage(t, "PUSHGO_REBUILD=true vs clean fold", imgR, imgC)
}

// startedApplied finds where a projector process started folding.
var startedApplied = regexp.MustCompile(`msg="projector started".* applied=(\d+)`)

// checkHistoryAgainstStream checks that a store's channel histories hold
// exactly the stream's operations of each channel, in order.
func checkHistoryAgainstStream(t *testing.T, msgs []opMsg, img storeImage) {
	t.Helper()
	want := map[string][]opMsg{}
	for _, m := range msgs {
		want[m.ChannelID] = append(want[m.ChannelID], m)
	}
	for ch, items := range img.History {
		if len(items) != len(want[ch]) {
			t.Errorf("%s: channel %s history has %d items, the stream %d operations", img.Dir, ch, len(items), len(want[ch]))
			continue
		}
		for i, raw := range items {
			it, err := decodeObject(raw)
			if err != nil {
				t.Fatalf("%s: channel %s history item %d: %v", img.Dir, ch, i, err)
			}
			m := want[ch][i]
			if seq, _ := asUint(it["seq"]); seq != m.Seq || it["op_id"] != m.OpID || it["op"] != m.Op || it["entity_id"] != m.EntityID {
				t.Errorf("%s: channel %s history item %d is %s, want seq %d op %s op_id %s entity %s",
					img.Dir, ch, i, strings.TrimSpace(string(raw)), m.Seq, m.Op, m.OpID, m.EntityID)
				break
			}
		}
	}
}
