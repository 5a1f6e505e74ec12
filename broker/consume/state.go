package consume

import (
	"sync"
	"sync/atomic"
)

// state is what a loop reports for readiness: whether it is taking
// messages now, and the last failure that stopped it.
type state struct {
	running atomic.Bool
	mu      sync.Mutex
	lastErr error
}

// Running reports whether the loop is taking messages now.
func (s *state) Running() bool { return s.running.Load() }

// Err is the last failure that stopped the loop's taking, or nil.
func (s *state) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *state) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}
