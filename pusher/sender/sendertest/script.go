package sendertest

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Queue is a per-token answer queue and receipt log, safe for concurrent
// use. The fakes embed it; so can other Provider implementations.
type Queue struct {
	mu       sync.Mutex
	answers  map[string][]Answer
	received map[string][]Observed
}

// Script queues answers for token.
func (s *Queue) Script(token string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answers == nil {
		s.answers = map[string][]Answer{}
	}
	s.answers[token] = append(s.answers[token], answers...)
}

// Received returns a copy of what was recorded for token.
func (s *Queue) Received(token string) []Observed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Observed(nil), s.received[token]...)
}

// Next records o and returns the next answer for its token (OK when none
// is queued).
func (s *Queue) Next(o Observed) Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received == nil {
		s.received = map[string][]Observed{}
	}
	s.received[o.Token] = append(s.received[o.Token], o)
	q := s.answers[o.Token]
	if len(q) == 0 {
		return Answer{Kind: OK}
	}
	s.answers[o.Token] = q[1:]
	return q[0]
}

// wait sleeps for a's latency, or until the request is abandoned; it
// reports whether to answer.
func wait(r *http.Request, a Answer) bool {
	if a.Latency <= 0 {
		return true
	}
	t := time.NewTimer(a.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func setRetryAfter(w http.ResponseWriter, a Answer) {
	if a.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((a.RetryAfter+time.Second-1)/time.Second)))
	}
}
