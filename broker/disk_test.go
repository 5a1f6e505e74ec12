package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/storage"
)

// TestFullDiskIsMeasuredAndRecoveredInProcess fills the real file system
// (a small tmpfs) under an embedded broker: Disk says it is full before
// any write fails (less than storage.Headroom free), JetStream's write
// that fails with "no space left on device" is reported (it holds that
// error and answers no later write to the stream), and once space is
// freed WatchDisk restarts JetStream in the process: writes are taken
// again, every acknowledged message is there exactly once (its
// Nats-Msg-Id still a duplicate), the one that failed was not stored and
// is taken when retried, and the process's connection was never lost.
func TestFullDiskIsMeasuredAndRecoveredInProcess(t *testing.T) {
	disk := brokertest.SmallDisk(t, 8<<20)
	logs := &lockedWriter{w: &strings.Builder{}}
	b := brokertest.Start(t, brokertest.Dir(filepath.Join(disk, "data")), brokertest.NoEnsure(),
		brokertest.Logger(slog.New(slog.NewTextHandler(logs, nil))))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if d := b.Disk(); d.Full() || d.Size == 0 || d.Free < storage.Headroom {
		t.Fatalf("a fresh 8 MiB disk measured %+v", d)
	}
	body := make([]byte, 4<<10)
	publish := func(id string, timeout time.Duration) (*jetstream.PubAck, error) {
		pctx, pcancel := context.WithTimeout(ctx, timeout)
		defer pcancel()
		return b.JS.Publish(pctx, "t.x", body, jetstream.WithMsgID(id))
	}
	var acked []string
	for i := range 10 {
		id := fmt.Sprintf("before-%d", i)
		if _, err := publish(id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}

	brokertest.FillDisk(t, disk, 256<<10)
	d := b.Disk()
	for deadline := time.Now().Add(5 * time.Second); !d.Full() && time.Now().Before(deadline); d = b.Disk() {
		time.Sleep(20 * time.Millisecond) // Disk's measure is a quarter second old at most
	}
	if !d.Full() || d.WriteErr != "" {
		t.Fatalf("disk with 256 KiB free measured %+v: want full (below the headroom), no write error yet", d)
	}
	// Write until the disk refuses one: the broker then does not answer.
	failed := ""
	for i := 0; failed == "" && i < 200; i++ {
		id := fmt.Sprintf("full-%d", i)
		if _, err := publish(id, time.Second); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				t.Fatalf("publish on a full disk: %v (want no answer)", err)
			}
			failed = id
			break
		}
		acked = append(acked, id)
	}
	if failed == "" {
		t.Fatal("the disk never filled")
	}
	d = b.Disk()
	for deadline := time.Now().Add(5 * time.Second); d.WriteErr == "" && time.Now().Before(deadline); d = b.Disk() {
		time.Sleep(50 * time.Millisecond)
	}
	if !d.Full() || !strings.Contains(d.WriteErr, "no space left on device") {
		t.Fatalf("after a failed write the disk measured %+v: want JetStream's write error", d)
	}
	if !strings.Contains(d.Why(), disk) {
		t.Errorf("Why %q does not name the disk's directory", d.Why())
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- b.WatchDisk(watchCtx) }()
	brokertest.FreeDisk(t, disk)
	for d = b.Disk(); d.Full(); d = b.Disk() {
		select {
		case err := <-watched:
			t.Fatalf("WatchDisk ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("the disk still measures full after space was freed: %+v\n%s", d, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Writes are taken again: the failed one was not stored, the acked
	// ones are duplicates.
	if ack, err := publish(failed, 5*time.Second); err != nil || ack.Duplicate {
		t.Fatalf("retry of the failed write after recovery: %+v, %v (want stored now)", ack, err)
	}
	acked = append(acked, failed)
	for _, id := range acked[:3] {
		if ack, err := publish(id, 5*time.Second); err != nil || !ack.Duplicate {
			t.Fatalf("retry of acknowledged %s after recovery: %+v, %v (want a duplicate)", id, ack, err)
		}
	}
	if _, err := publish("after-0", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, "after-0")

	// The stream holds every acknowledged message exactly once, in order.
	s, err = b.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(acked)) {
		t.Errorf("stream holds %d messages, %d were acknowledged", info.State.Msgs, len(acked))
	}
	for i, id := range acked {
		m, err := s.GetMsg(ctx, info.State.FirstSeq+uint64(i))
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, id, err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != id {
			t.Errorf("message %d is %q, want %q", i, got, id)
		}
	}
	if st, rc := b.NC.Status(), b.NC.Stats().Reconnects; st != nats.CONNECTED || rc != 0 {
		t.Errorf("the connection was disturbed: %v, %d reconnects", st, rc)
	}
	if !strings.Contains(logs.String(), "JetStream restarted") {
		t.Errorf("no line says JetStream was restarted:\n%s", logs.String())
	}
	stopWatch()
	if err := <-watched; err != nil {
		t.Errorf("WatchDisk: %v", err)
	}
}

// lockedWriter serializes the writes of concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// TestDiskFailingOverAndOverEndsTheWatch: a disk whose writes keep failing
// is not cleared by restarting JetStream for ever: after diskRecoveries
// restarts within the window WatchDisk ends with ErrDiskFailed, naming the
// store's directory and saying a restart of the process recovers (the
// gateway then ends, and is started again).
func TestDiskFailingOverAndOverEndsTheWatch(t *testing.T) {
	disk := brokertest.SmallDisk(t, 8<<20)
	b := brokertest.Start(t, brokertest.Dir(filepath.Join(disk, "data")), brokertest.NoEnsure())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- b.WatchDisk(ctx) }()
	body := make([]byte, 64<<10)
	for round := 0; ; round++ {
		if round > 5 {
			t.Fatal("WatchDisk kept restarting JetStream")
		}
		brokertest.FillDisk(t, disk, 0)
		for i := 0; ; i++ { // write until the disk refuses one (the broker then does not answer)
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := b.JS.Publish(pctx, "t.x", body)
			pcancel()
			if err != nil {
				break
			}
			if i > 100 {
				t.Fatal("the disk never filled")
			}
		}
		brokertest.FreeDisk(t, disk)
		// Recovered (the measure is not full), or the watch ended.
		for done := false; !done; {
			select {
			case err := <-watched:
				if !errors.Is(err, broker.ErrDiskFailed) || !strings.Contains(err.Error(), disk) || !strings.Contains(err.Error(), "restart of the process recovers") {
					t.Fatalf("WatchDisk ended with %v; want ErrDiskFailed naming %s and the restart", err, disk)
				}
				if round != 3 {
					t.Errorf("WatchDisk gave up after %d restarts, want 3", round)
				}
				return
			case <-ctx.Done():
				t.Fatal("neither recovered nor gave up")
			case <-time.After(50 * time.Millisecond):
				done = !b.Disk().Full()
			}
		}
	}
}
