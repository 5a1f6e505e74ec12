package leaderread

import (
	"errors"
	"testing"
	"time"
)

// TestConfirmsNone: which stream info answers confirm a "none": the
// subject empty, a leader, and a quorum of the replicas (the leader
// counted) heard from within leaseBound.
func TestConfirmsNone(t *testing.T) {
	type peer struct {
		active           time.Duration
		offline, pending bool
	}
	answer := func(leader string, held uint64, peers ...peer) *streamInfoResponse {
		r := &streamInfoResponse{}
		if held > 0 {
			r.Total = 1
			r.State.Subjects = map[string]uint64{"pushgo.op.c.event.e": held}
		}
		if leader != "" || peers != nil {
			r.Cluster = &struct {
				Leader   string     `json:"leader"`
				Replicas []peerInfo `json:"replicas"`
			}{Leader: leader}
			for _, p := range peers {
				r.Cluster.Replicas = append(r.Cluster.Replicas, peerInfo{Name: "n", Offline: p.offline, Pending: p.pending, Active: int64(p.active)})
			}
		}
		return r
	}
	fresh, stale := peer{active: 300 * time.Millisecond}, peer{active: 9 * time.Second}
	for _, c := range []struct {
		name      string
		replicas  int
		r         *streamInfoResponse
		confirmed bool
	}{
		{"R3, both followers heard from", 3, answer("nats-1", 0, fresh, fresh), true},
		{"R3, one follower heard from", 3, answer("nats-1", 0, fresh, stale), true},
		{"R3, one follower heard from, the other offline", 3, answer("nats-1", 0, fresh, peer{offline: true}), true},
		{"R3, neither (a deposed leader)", 3, answer("nats-1", 0, stale, stale), false},
		{"R3, heard from at the bound", 3, answer("nats-1", 0, peer{active: leaseBound}, stale), true},
		{"R3, just past the bound", 3, answer("nats-1", 0, peer{active: leaseBound + time.Millisecond}, stale), false},
		{"R3, never heard from", 3, answer("nats-1", 0, peer{}, stale), false},
		{"R3, heard from but offline", 3, answer("nats-1", 0, peer{active: time.Millisecond, offline: true}, stale), false},
		{"R3, the subject held", 3, answer("nats-1", 1, fresh, fresh), false},
		{"R5, two of four followers", 5, answer("nats-1", 0, fresh, fresh, stale, stale), true},
		{"R5, one of four followers", 5, answer("nats-1", 0, fresh, stale, stale, stale), false},
		{"no leader", 3, answer("", 0, fresh, fresh), false},
		{"no cluster info", 3, answer("", 0), false},
		{"R3 migrating: a pending peer fresh, the others not", 3, answer("nats-1", 0, peer{active: time.Millisecond, pending: true}, stale, stale), false},
		{"R3 migrating: one follower and a pending peer", 3, answer("nats-1", 0, fresh, stale, peer{pending: true}), true},
	} {
		err := c.r.confirmsNone(c.replicas)
		if c.confirmed != (err == nil) {
			t.Errorf("%s: %v, want confirmed %v", c.name, err, c.confirmed)
		}
		if err != nil && !errors.Is(err, ErrUnconfirmed) {
			t.Errorf("%s: %v is not ErrUnconfirmed", c.name, err)
		}
	}
}
