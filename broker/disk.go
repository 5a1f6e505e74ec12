package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
// restarted: the server's own answer to a full disk is to shut JetStream
// down (stream.go, "JetStream out of space, will be DISABLED") and to
// start it again on a configuration reload (reload.go, restartJetStream),
// which recovers every stream and bucket from its files.
//
// So the process that runs the embedded server measures the disk itself
// (Disk: statfs, and the write error JetStream holds, which its health
// check reports), refuses writes while it is full (507 store_full), and
// WatchDisk restarts JetStream in the process once space is back.

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
var ErrDiskFailed = errors.New("broker: the store's disk failed a write")

// diskGauge caches the measure of the disk.
type diskGauge struct {
	mu   sync.Mutex
	at   time.Time
	last storage.Disk
}

// Disk is the file system under the store and the write error JetStream
// holds, measured within the last quarter second.
func (e *Embedded) Disk() storage.Disk {
	e.disk.mu.Lock()
	defer e.disk.mu.Unlock()
	if time.Since(e.disk.at) < diskFresh {
		return e.disk.last
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
	e.disk.last, e.disk.at = d, time.Now()
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
			return fmt.Errorf("%w: %s (%s) after %d restarts of JetStream in %s; restart the process",
				ErrDiskFailed, d.Dir, d.WriteErr, len(recoveries), diskRecoveryWindow)
		}
		recoveries = append(recoveries, now)
		if err := e.restartJetStream(d); err != nil {
			return fmt.Errorf("%w: %s (%s), and JetStream could not be restarted in the process: %w; restart the process",
				ErrDiskFailed, d.Dir, d.WriteErr, err)
		}
	}
}

// restartJetStream shuts JetStream down and starts it again, as the
// server does on a configuration reload after it disabled JetStream
// itself: every stream and bucket is recovered from its files, with no
// write error.
func (e *Embedded) restartJetStream(d storage.Disk) error {
	e.log.Warn("broker: restarting JetStream to clear the write error it holds, now that the disk has space again",
		"dir", d.Dir, "free_bytes", d.Free, "write_error", d.WriteErr)
	start := time.Now()
	if err := e.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("shut JetStream down: %w", err)
	}
	// A reload with the same options starts JetStream again (reload.go:
	// "jetstream" still true while it is not running: restartJetStream).
	if err := e.srv.ReloadOptions(e.opts.Clone()); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if !e.srv.JetStreamEnabled() {
		return errors.New("JetStream did not start again")
	}
	if werr := e.measureDisk().WriteErr; werr != "" {
		return errors.New(werr)
	}
	e.log.Warn("broker: JetStream restarted; writes are taken again", "dir", d.Dir, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// discardLogger is the logger of an Embedded started without one.
var discardLogger = slog.New(slog.DiscardHandler)
