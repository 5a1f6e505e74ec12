package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pushgo/gateway/broker/storage"
)

// The disk under the store.
//
// JetStream (nats-server 2.15, filestore.go setWriteErr, stream.go
// processJetStreamMsg) keeps the first error a stream's store failed to
// write with ("no space left on device" on a full disk) and, from then on,
// returns it for every write to that stream or bucket without writing and
// without answering the publisher, which waits out its timeout: nothing
// in the running server clears it, even once space is back. Only the
// stream's store being opened again does, which happens when JetStream is
// restarted for the account: the server's own answer to a full disk is to
// shut JetStream down (stream.go, "JetStream out of space, will be
// DISABLED") and to start it again on a configuration reload (reload.go,
// restartJetStream; configJetStream enables each account), which recovers
// every stream and bucket from its files.
//
// So the process that runs the embedded server measures the disk itself
// (Disk: statfs, and the write error JetStream holds, which its health
// check reports), refuses writes while it is full (507 store_full), and
// WatchDisk restarts the account's JetStream in the process once space is
// back.

// diskFresh is how long a measure of the disk serves Disk.
const diskFresh = 250 * time.Millisecond

// DiskCheckInterval is how often WatchDisk measures the disk.
const DiskCheckInterval = 500 * time.Millisecond

// diskRecoveries bounds the in-process restarts of JetStream: more than
// this many within diskRecoveryWindow and WatchDisk gives up (a disk that
// keeps failing writes with space free is not full: it is failing).
const (
	diskRecoveries     = 3
	diskRecoveryWindow = 10 * time.Minute
)

// ErrDiskFailed is wrapped by WatchDisk's error when JetStream holds a
// write error that restarting it in the process did not clear: a restart
// of the process is the way back.
var ErrDiskFailed = errors.New("the disk under the broker's store failed a write")

// diskGauge caches the measure of the disk: every append asks it, so the
// latest measure is read without a lock, and one caller at a time measures
// again once it is older than diskFresh (the others take the last one).
type diskGauge struct {
	mu   sync.Mutex // held while measuring
	last atomic.Pointer[diskMeasure]
}

type diskMeasure struct {
	at time.Time
	d  storage.Disk
}

// Disk is the file system under the store and the write error JetStream
// holds, measured within the last quarter second (or being measured).
func (e *Embedded) Disk() storage.Disk {
	if m := e.disk.last.Load(); m != nil && time.Since(m.at) < diskFresh {
		return m.d
	}
	if !e.disk.mu.TryLock() {
		if m := e.disk.last.Load(); m != nil {
			return m.d // another caller is measuring
		}
		e.disk.mu.Lock()
	}
	defer e.disk.mu.Unlock()
	if m := e.disk.last.Load(); m != nil && time.Since(m.at) < diskFresh {
		return m.d
	}
	return e.measureDiskLocked()
}

func (e *Embedded) measureDisk() storage.Disk {
	e.disk.mu.Lock()
	defer e.disk.mu.Unlock()
	return e.measureDiskLocked()
}

func (e *Embedded) measureDiskLocked() storage.Disk {
	d := storage.Disk{Dir: e.dir}
	if free, size, err := statDisk(e.dir); err == nil {
		d.Free, d.Size = free, size
	}
	d.WriteErr = writeError(e.srv)
	e.disk.last.Store(&diskMeasure{at: time.Now(), d: d})
	return d
}

// writeError is the write error a stream (or bucket) of the server holds,
// "" when none (or JetStream is not running: restarting).
func writeError(srv *server.Server) string {
	if !srv.JetStreamEnabled() {
		return ""
	}
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	for _, he := range h.Errors {
		// monitor.go: "JetStream stream '%s > %s' write error: %v"
		if he.Type == server.HealthzErrorStream && strings.Contains(he.Error, "write error") {
			return he.Error
		}
	}
	return ""
}

// WatchDisk measures the disk every DiskCheckInterval until ctx ends. It
// logs once when the disk is full (ERROR) and once when it is not any
// more; when JetStream holds a write error and the disk has space again,
// it restarts JetStream in the process, which opens every stream and
// bucket again from its files: what was acknowledged is on disk (a
// standalone stream writes each message before its PubAck), what was
// refused never was (a partly written last record is cut off when the
// stream is recovered). It returns an error wrapping ErrDiskFailed when
// that restart does not clear the error, or was needed more than
// diskRecoveries times within diskRecoveryWindow: the process then ends,
// and a restart recovers.
func (e *Embedded) WatchDisk(ctx context.Context) error {
	t := time.NewTicker(DiskCheckInterval)
	defer t.Stop()
	var full bool
	var recoveries []time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d := e.measureDisk()
		switch {
		case d.Full() && !full:
			full = true
			e.log.Error("broker: " + d.Why())
		case !d.Full() && full:
			full = false
			e.log.Info("broker: the disk under the store has space again; writes are taken", "dir", d.Dir, "free_bytes", d.Free)
		}
		if d.WriteErr == "" || d.Free < storage.Headroom || d.Size == 0 {
			continue
		}
		now := time.Now()
		for len(recoveries) > 0 && now.Sub(recoveries[0]) > diskRecoveryWindow {
			recoveries = recoveries[1:]
		}
		if len(recoveries) >= diskRecoveries {
			return fmt.Errorf("%w: %s (%s), again after %d restarts of JetStream in %s; a restart of the process recovers once the disk takes writes",
				ErrDiskFailed, d.Dir, d.WriteErr, len(recoveries), diskRecoveryWindow)
		}
		if e.srv.JetStreamIsClustered() {
			// A clustered server's streams are its replicas': JetStream
			// is not restarted under them here.
			return fmt.Errorf("%w: %s (%s); a restart of the process recovers", ErrDiskFailed, d.Dir, d.WriteErr)
		}
		recoveries = append(recoveries, now)
		if err := e.restartJetStream(d); err != nil {
			return fmt.Errorf("%w: %s (%s), and JetStream could not be restarted in the process: %w; a restart of the process recovers",
				ErrDiskFailed, d.Dir, d.WriteErr, err)
		}
	}
}

// restartJetStream disables JetStream for the server's account and
// enables it again, as the server itself does on a configuration reload
// (configJetStream): every stream and bucket of the account is stopped
// and recovered from its files, with no write error. (The account and not
// the whole of JetStream: restarting it whole sets up its API queues again
// (setJetStreamExportSubs) under requests in flight, a data race in
// nats-server 2.15.2 that the race detector reports.) Every client of the
// broker is in the global account (its users name none).
func (e *Embedded) restartJetStream(d storage.Disk) error {
	e.log.Warn("broker: restarting JetStream to clear the write error it holds, now that the disk has space again",
		"dir", d.Dir, "free_bytes", d.Free, "write_error", d.WriteErr)
	start := time.Now()
	acc := e.srv.GlobalAccount()
	if err := acc.DisableJetStream(); err != nil {
		return fmt.Errorf("disable JetStream for the account: %w", err)
	}
	// nil limits: the account's default tiers, which the server gave the
	// global account at start (enableJetStreamAccounts).
	if err := acc.EnableJetStream(nil, nil); err != nil {
		return fmt.Errorf("enable JetStream for the account again: %w", err)
	}
	if werr := e.measureDisk().WriteErr; werr != "" {
		return errors.New(werr)
	}
	e.log.Warn("broker: JetStream restarted; writes are taken again", "dir", d.Dir, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// discardLogger is the logger of an Embedded started without one.
var discardLogger = slog.New(slog.DiscardHandler)
