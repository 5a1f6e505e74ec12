package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// appendFloor is the -diag "http + publish" row's server: the least any
// HTTP front of this broker does for a write, measured under the write
// row's load from a load process. net/http (no router, no middleware)
// reads the request's body and publishes it, as it is, synchronously to
// the next of the raw anchor's per-entity subjects, and answers a fixed
// success. Nothing else: no decoding, validation, compare-and-swap,
// projection or delivery consumer. Its rate against the raw publish is
// what HTTP alone costs on this machine, with the load generator sharing
// its cores; ours against it is what the gateway's own work costs.
type appendFloor struct {
	raw  *rawTarget
	srv  *http.Server
	ln   net.Listener
	next atomic.Uint64
	done chan error
}

// floorAnswer is the fixed answer: what the load's success check reads.
var floorAnswer = []byte(`{"success":true,"data":{"accepted":true}}`)

// startAppendFloor starts a fresh raw target (startRaw: broker, stream,
// subjects) and the HTTP server in front of it on a free 127.0.0.1 port.
func startAppendFloor(ctx context.Context, o *options, m syncMode, log *slog.Logger) (*appendFloor, error) {
	r, err := startRaw(ctx, o, m, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.close()
		return nil, err
	}
	f := &appendFloor{raw: r, ln: ln, done: make(chan error, 1)}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { f.done <- f.srv.Serve(ln) }()
	return f, nil
}

// addr is the server's host:port.
func (f *appendFloor) addr() string { return f.ln.Addr().String() }

func (f *appendFloor) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i := f.next.Add(1)
	subjects := f.raw.subjects[i%2]
	subject := subjects[(i/2)%uint64(len(subjects))]
	if _, err := f.raw.js.PublishMsg(req.Context(), &nats.Msg{Subject: subject, Data: body}); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(floorAnswer)
}

// close stops the server, then the broker.
func (f *appendFloor) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := f.srv.Shutdown(ctx)
	if serr := <-f.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("append floor: %w", serr))
	}
	f.raw.close()
	return err
}
