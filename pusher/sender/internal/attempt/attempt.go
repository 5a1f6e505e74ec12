// Package attempt records what the provider answered to one HTTP attempt,
// below an SDK that does not expose it (apns2 drops the response headers, so
// Retry-After; the Firebase SDK retries 503s and network errors itself).
//
// A sender wraps its HTTP transport in a Transport, calls Start to get a
// context carrying a Record, and passes that context to the SDK. After the
// SDK returns, the Record holds the status and headers of the attempt, or
// the transport error.
//
// With Record.StopAfterFirst the Transport also cancels the context once the
// first attempt is over (its body closed, or its transport error returned),
// so an SDK that would sleep and retry returns at once with a context error;
// the sender then classifies the recorded attempt itself. A second attempt
// under the same Record is refused without touching the network.
package attempt

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
)

// Record is what one attempt got.
type Record struct {
	// StopAfterFirst: see the package comment.
	StopAfterFirst bool

	cancel context.CancelFunc

	mu       sync.Mutex
	attempts int
	status   int
	header   http.Header
	body     []byte // the first maxBody bytes the SDK read
	err      error
	done     bool
}

// maxBody is how much of a response body a Record keeps: enough for any
// provider error body.
const maxBody = 8 << 10

type key struct{}

// Start returns a context that carries a new Record, and the Record. cancel
// must be called when the send is over (it releases the context).
func Start(ctx context.Context, stopAfterFirst bool) (context.Context, *Record, context.CancelFunc) {
	if !stopAfterFirst {
		// Nothing to stop: a context of its own (and its place among its
		// parent's children) for every push was garbage.
		r := &Record{cancel: func() {}}
		return context.WithValue(ctx, key{}, r), r, r.cancel
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Record{StopAfterFirst: true, cancel: cancel}
	return context.WithValue(ctx, key{}, r), r, cancel
}

// Result returns the recorded attempt: whether there was one, its HTTP
// status (0 on a transport error), headers (nil for a success: 2xx) and
// transport error.
func (r *Record) Result() (attempted bool, status int, header http.Header, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts > 0, r.status, r.header, r.err
}

// Body returns the start of the response body, as far as the SDK read it.
func (r *Record) Body() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body
}

// Stopped reports whether the Record ended its context itself, so a context
// error from the SDK means "stopped after the first attempt", not "the
// caller's deadline".
func (r *Record) Stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done && r.StopAfterFirst
}

func (r *Record) finish() {
	r.mu.Lock()
	r.done = true
	stop := r.StopAfterFirst
	r.mu.Unlock()
	if stop {
		r.cancel()
	}
}

// errSecondAttempt is returned for an attempt after the first under a
// StopAfterFirst Record.
var errSecondAttempt = errors.New("attempt: one attempt per send")

// Transport records attempts made under a context from Start; requests
// without a Record pass through untouched.
type Transport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r, _ := req.Context().Value(key{}).(*Record)
	if r == nil {
		return t.Base.RoundTrip(req)
	}
	r.mu.Lock()
	r.attempts++
	second := r.attempts > 1 && r.StopAfterFirst
	r.mu.Unlock()
	if second {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errSecondAttempt
	}
	resp, err := t.Base.RoundTrip(req)
	r.mu.Lock()
	if err != nil {
		r.err = err
	} else {
		r.status = resp.StatusCode
		if resp.StatusCode >= http.StatusMultipleChoices {
			// Kept for what a refusal says (Retry-After); a success's
			// headers are not asked for, and a clone a push added to the
			// garbage that the delivery latency row's tail waits on.
			r.header = resp.Header.Clone()
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.finish()
		return nil, err
	}
	resp.Body = &body{ReadCloser: resp.Body, r: r}
	return resp, nil
}

// CloseIdleConnections forwards to the base transport (apns2's
// Client.CloseIdleConnections needs it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type body struct {
	io.ReadCloser
	r    *Record
	once sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.r.mu.Lock()
		if room := maxBody - len(b.r.body); room > 0 {
			b.r.body = append(b.r.body, p[:min(n, room)]...)
		}
		b.r.mu.Unlock()
	}
	return n, err
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.r.finish)
	return err
}
