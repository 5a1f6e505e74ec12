package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestTwoProjectorReplicas runs one ingest and two projector processes with
// their own stores. Reads through the ingest keep succeeding while either
// replica is stopped with SIGTERM (the other alone serves, and a restarted
// replica serves writes made while it was down), and once both have caught
// up their projections are identical.
func TestTwoProjectorReplicas(t *testing.T) {
	t.Parallel()
	a := startIngest(t)
	dirB, dirC := t.TempDir(), t.TempDir()
	b := startProjector(t, a, dirB)
	waitServed(t, a, 20*time.Second, b)
	c := startProjector(t, a, dirC)
	waitLog(t, c, "pushgo serving", 20*time.Second)

	var chans []chanCred
	var chanIDs []string
	for i := range 2 {
		cr := chanCred{Password: "replicas-" + randomHex(t, 8)}
		cr.ID = createChannel(t, a, fmt.Sprintf("replicas-%d", i), cr.Password)
		chans, chanIDs = append(chans, cr), append(chanIDs, cr.ID)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	phase := func(name string, ops int, watch ...*gateway) *workload {
		t.Helper()
		// Each phase has its own minute: one shared by all of them ran out
		// under make test's parallel load before the third phase began.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		w := newWorkload(a, workloadConfig{Name: name, Channels: chans, Workers: 4, Ops: ops, Seed: seed + uint64(len(name)),
			Things: 8, Events: 8, Deletes: 2, Closes: 3})
		if n := w.run(ctx); n != 4*ops {
			for _, f := range w.failures() {
				t.Error(f)
			}
			t.Fatalf("phase %s: %d of %d operations acknowledged", name, n, 4*ops)
		}
		failIfExited(t, watch)
		return w
	}

	// Both replicas up.
	w1 := phase("both", 150, b, c)
	waitApplied(t, a, streamLastSeq(t, a.natsURL), 40, 30*time.Second, b, c)
	w1.verifyReads(t, a, "both replicas")

	// B stops; reads go on throughout and after, served by C alone,
	// including reads of writes made while B is down.
	readsDuring(t, a, w1, "SIGTERM of B", func() { stopClean(t, b) })
	w2 := phase("b-down", 60, c)
	w1.verifyReads(t, a, "C alone")
	w2.verifyReads(t, a, "C alone, writes made while B is down")

	// B comes back on its store; then C stops: B alone serves, and must
	// first fold what was written while it was down.
	b2 := startProjector(t, a, dirB)
	waitLog(t, b2, "pushgo serving", 20*time.Second)
	waitApplied(t, a, streamLastSeq(t, a.natsURL), 40, 30*time.Second, b2, c)
	readsDuring(t, a, w1, "SIGTERM of C", func() { stopClean(t, c) })
	w3 := phase("c-down", 60, b2)
	for i, w := range []*workload{w1, w2, w3} {
		w.verifyReads(t, a, fmt.Sprintf("B alone, phase %d", i+1))
	}

	// C comes back; both catch up; stopped, their stores are identical.
	c2 := startProjector(t, a, dirC)
	waitLog(t, c2, "pushgo serving", 20*time.Second)
	last := streamLastSeq(t, a.natsURL)
	waitApplied(t, a, last, 40, 30*time.Second, b2, c2)
	stopClean(t, b2)
	stopClean(t, c2)
	imgB := openImage(t, dirB, chanIDs)
	imgC := openImage(t, dirC, chanIDs)
	if imgB.Applied != last || imgC.Applied != last {
		t.Errorf("Applied() B %d, C %d; the stream's last sequence is %d", imgB.Applied, imgC.Applied, last)
	}
	sameImage(t, "replica B vs replica C", imgB, imgC)
	all := mergeModels(w1, w2, w3)
	all.checkImageAgainstModel(t, imgB)
	checkHistoryAgainstStream(t, readOps(t, a.natsURL), imgB)
	t.Logf("both replicas at sequence %d with %d snapshot and index entries", last, len(imgB.Dump))
}

// readsDuring reads entities of w through a from several goroutines
// before, during and after stop, and requires every read to succeed and to
// match the model.
func readsDuring(t *testing.T, a *gateway, w *workload, what string, stop func()) {
	t.Helper()
	ents := w.entities()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	halt := make(chan struct{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ok   int
		errs []string
	)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-halt:
					return
				default:
				}
				e := ents[rng.IntN(len(ents))]
				var err error
				if rng.IntN(4) == 0 {
					cr := w.credOf(e.Channel)
					var resp *apiResp
					resp, err = a.Do(ctx, http.MethodPost, "/channel/"+e.Kind+"s", mustJSON(nil, map[string]any{"channel_id": cr.ID, "password": cr.Password, "limit": 5}), nil)
					if err == nil {
						_, err = okData(resp, "items", "next_cursor", "has_more")
					}
				} else {
					var snap map[string]any
					if snap, err = getSnapshot(ctx, a, w.credOf(e.Channel), e); err == nil {
						err = checkSnapshot(e, snap)
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	// Reads run before and after the stop until enough of each succeeded
	// (counts, not time: under make test's parallel load a fixed window
	// held 18 reads once); the stop's own reads are whatever fell in it.
	succeeded := func() int {
		mu.Lock()
		defer mu.Unlock()
		return ok
	}
	waitReads := func(n int, when string) {
		deadline := time.Now().Add(30 * time.Second)
		for succeeded() < n {
			if time.Now().After(deadline) {
				t.Errorf("only %d reads succeeded in 30 s %s the %s", succeeded(), when, what)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitReads(10, "before")
	stopStart := time.Now()
	stop()
	stopTook := time.Since(stopStart)
	waitReads(succeeded()+15, "after")
	close(halt)
	wg.Wait()
	for i, e := range errs {
		if i == 5 {
			t.Errorf("... %d failed reads in all", len(errs))
			break
		}
		t.Errorf("read during %s (stopped at %s): %s", what, stopStart.Format("15:04:05.000"), e)
	}
	if ok < 20 {
		t.Errorf("only %d reads succeeded around the %s; the check is too weak", ok, what)
	}
	t.Logf("%s took %s; %d reads around it succeeded, %d failed", what, stopTook.Round(time.Millisecond), ok, len(errs))
}

// mergeModels joins the models of several workloads over the same
// channels (their entities are disjoint).
func mergeModels(ws ...*workload) *workload {
	out := newWorkload(ws[0].g, ws[0].cfg)
	for _, w := range ws {
		for id, e := range w.things {
			out.things[id] = e
		}
		for id, e := range w.events {
			out.events[id] = e
		}
		out.acked = append(out.acked, w.acked...)
	}
	return out
}
