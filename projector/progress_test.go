package projector

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/reads"
)

// TestProgressSaysHowFar: a fold that starts far behind the log reports
// folded / total, its rate and the time left, until it is within
// catchUpLag of the end; then it reports nothing (ready).
func TestProgressSaysHowFar(t *testing.T) {
	var buf syncBuffer
	f := foldProgress{log: slog.New(slog.NewTextHandler(&buf, nil))}
	if s := f.status(); s != "" {
		t.Fatalf("before any fold: %q", s)
	}
	f.started(0, 100_000)
	if s := f.status(); !strings.HasPrefix(s, "rebuilding the projection from the log: folded 0 of 100000 operations (0%)") {
		t.Fatalf("at the start: %q", s)
	}
	// Samples are kept a second apart: make the first one old.
	f.mu.Lock()
	f.samples[0].at = f.samples[0].at.Add(-10 * time.Second)
	f.began = f.samples[0].at
	f.mu.Unlock()
	f.committed(40_000, 60_000)
	s := f.status()
	if m := regexp.MustCompile(`^rebuilding the projection from the log: folded 40000 of 100000 operations \(40%\), (\d+)/s, about (\d+)s left$`).FindStringSubmatch(s); m == nil {
		t.Fatalf("mid-way: %q", s)
	} else if rate, _ := strconv.Atoi(m[1]); rate < 3900 || rate > 4000 {
		t.Fatalf("mid-way: rate %d/s, want 4000/s (40,000 in 10 s): %q", rate, s)
	} else if left, _ := strconv.Atoi(m[2]); left != 15 {
		t.Fatalf("mid-way: %ds left, want 15 (60,000 at 4,000/s): %q", left, s)
	}
	f.committed(95_000, catchUpLag)
	if s := f.status(); s != "" {
		t.Fatalf("within %d of the end: %q", catchUpLag, s)
	}
	if !strings.Contains(buf.String(), "caught up with the log") || !strings.Contains(buf.String(), "folded=95000") {
		t.Fatalf("log:\n%s", buf.String())
	}
	// Started again near the end: nothing to report.
	f.started(95_000, 10)
	if s := f.status(); s != "" {
		t.Fatalf("started near the end: %q", s)
	}
	// Started again far behind (a restart): a catch-up, not a rebuild.
	f.started(50_000, 20_000)
	if s := f.status(); !strings.HasPrefix(s, "catching up with the log: folded 0 of 20000") {
		t.Fatalf("a restart far behind: %q", s)
	}
}

// TestRebuildReportsProgress: a projector folding a log of more than
// catchUpLag operations from an empty projection says so at the start,
// is not ready while it folds (Ready says how far it is), and says it
// caught up, with the operations it folded, at the end.
func TestRebuildReportsProgress(t *testing.T) {
	b := brokertest.Start(t)
	last := appendLog(t, b.JS, mixedLog(rand.New(rand.NewPCG(3, 3)), catchUpLag+5000))
	var buf syncBuffer
	p, err := Start(context.Background(), b.NC, Config{InMemory: true, BatchSize: 100,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sawProgress := ""
	for p.Applied() < last {
		if err := p.Ready(); err != nil && strings.Contains(err.Error(), "rebuilding the projection from the log: folded") {
			sawProgress = err.Error()
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, p, last)
	if err := p.Ready(); err != nil {
		t.Fatalf("caught up, Ready: %v", err)
	}
	out := buf.String()
	if !strings.Contains(out, `msg="projector: rebuilding the projection from the log; not ready until it is within 10000 operations of the log's end" applied=0 operations=15000`) {
		t.Fatalf("no line at the start of the rebuild:\n%s", out)
	}
	if !regexp.MustCompile(`msg="projector: caught up with the log" applied=\d+ folded=\d+`).MatchString(out) {
		t.Fatalf("no line at the end of the rebuild:\n%s", out)
	}
	t.Logf("Ready while rebuilding: %s", sawProgress)
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOutOfReach: a read's barrier is out of reach of a catching-up fold
// when its recent rate would not fold up to it within the read's wait; a
// fold that is not catching up reaches everything (the read waits).
func TestOutOfReach(t *testing.T) {
	f := foldProgress{log: slog.New(slog.DiscardHandler)}
	if f.outOfReach(0, 1_000_000, 2*time.Second) {
		t.Fatal("no catch-up under way, yet out of reach")
	}
	f.started(0, 1_000_000)
	if !f.outOfReach(0, 1_000_000, 2*time.Second) || f.outOfReach(0, catchUpLag, 2*time.Second) {
		t.Fatal("no rate yet: want out of reach only beyond catchUpLag")
	}
	f.mu.Lock()
	f.samples[0].at = f.samples[0].at.Add(-10 * time.Second)
	f.mu.Unlock()
	f.committed(100_000, 900_000) // 10,000/s
	if f.outOfReach(100_000, 100_000+15_000, 2*time.Second) {
		t.Error("15,000 ahead at 10,000/s is within a 2 s wait")
	}
	if !f.outOfReach(100_000, 100_000+25_000, 2*time.Second) {
		t.Error("25,000 ahead at 10,000/s is beyond a 2 s wait")
	}
	if f.outOfReach(100_000, 90_000, 2*time.Second) {
		t.Error("a barrier already folded is out of reach")
	}
}

// TestCatchingUpReplicaAnswersAtOnce: a read whose barrier a catching-up
// fold would not reach within the read's wait is answered
// projection_lagging at once, marked CatchingUp (the front asks another
// replica), not after the wait.
func TestCatchingUpReplicaAnswersAtOnce(t *testing.T) {
	p := &Projector{cfg: Config{ReadWait: 30 * time.Second}, progress: foldProgress{log: slog.New(slog.DiscardHandler)}}
	p.progress.started(0, 1_000_000)
	resp := p.serveReq(&reads.Request{Route: reads.ThingGet, ChannelID: "c", ThingID: "t", MinSeq: 500_000})
	if resp.ErrorCode != apierr.ProjectionLagging || !resp.CatchingUp || !strings.Contains(resp.Error, "rebuilding the projection") {
		t.Fatalf("answer %+v, want projection_lagging, catching up, saying how far", resp)
	}
}

// TestReceiptsFarBehindHandSendStatusOn: a replica whose receipts fold is
// far behind the log of receipts (a rebuild) hands /send_status on
// (CatchingUp) rather than answer a delivered operation as not yet sent,
// after a caught-up replica answered it sent.
func TestReceiptsFarBehindHandSendStatusOn(t *testing.T) {
	p := &Projector{cfg: Config{ReadWait: 30 * time.Second}, progress: foldProgress{log: slog.New(slog.DiscardHandler)},
		reads: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	p.receiptsPending.Store(catchUpLag + 1)
	resp := p.serveReqSafely(&reads.Request{Route: reads.SendStatus, OpID: "op"})
	if resp.ErrorCode != apierr.ProjectionLagging || !resp.CatchingUp || !strings.Contains(resp.Error, "receipts") {
		t.Fatalf("send status with the receipts far behind: %+v, want projection_lagging, catching up", resp)
	}
}

// TestStalledCatchUpIsNotOutOfReach: a catch-up that has not committed
// for twice the read's wait (its fold failed, or what it had left left
// the log) no longer answers at once: the read waits, and a wait in vain
// has the fold look why (a stale "catching up" answered every read at
// once for ever, and the fold was never asked to look).
func TestStalledCatchUpIsNotOutOfReach(t *testing.T) {
	f := foldProgress{log: slog.New(slog.DiscardHandler)}
	f.started(0, 1_000_000)
	if !f.outOfReach(0, 500_000, 2*time.Second) {
		t.Fatal("a fresh catch-up 500,000 behind is within reach")
	}
	f.mu.Lock()
	f.lastCommit = f.lastCommit.Add(-10 * time.Minute)
	f.mu.Unlock()
	if f.outOfReach(0, 500_000, 2*time.Second) {
		t.Fatal("a catch-up stalled for 10 minutes still answers reads at once")
	}
}
