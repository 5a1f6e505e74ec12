// Package storage tells a write the broker refused because its storage is
// at its limit from one it could not take for the moment, and measures how
// full that storage is. A full store is no outage that passes: every write
// fails until an operator frees or adds storage, so it has its own answer
// (507 store_full, no Retry-After) instead of a 503 "retry".
package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/apierr"
)

// JetStream's error codes for a write refused for lack of storage.
const (
	errAccountResourcesExceed  = 10002 // "resource limits exceeded for account": the account's max_file (a cluster's accounts.conf)
	errInsufficientResources   = 10023 // "insufficient resources": the server's or account's limit
	errMemoryResourcesExceeded = 10028 // "insufficient memory resources available"
	errStorageResourcesExceed  = 10047 // "insufficient storage resources available"
	errStreamStoreFailed       = 10077 // the stream's store refused it: "maximum bytes exceeded" (stream MaxBytes, discard new)
)

// Full reports whether err is the broker refusing a write (a publish to a
// stream, a bucket put) because its storage is at its limit.
func Full(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case errAccountResourcesExceed, errInsufficientResources, errMemoryResourcesExceeded, errStorageResourcesExceed:
		return true
	case errStreamStoreFailed:
		return strings.Contains(ae.Description, "maximum bytes exceeded")
	}
	return false
}

// Refusal is the answer to a write refused for lack of storage: 507
// store_full, without Retry-After.
func Refusal() *apierr.Error { return apierr.New(apierr.StoreFull) }

// Or is Refusal when err says the store is full, otherwise unavailable
// (the answer for a broker that could not take the write for now).
func Or(err error, unavailable *apierr.Error) *apierr.Error {
	if Full(err) {
		return Refusal()
	}
	return unavailable
}

// Headroom is the free storage below which the store counts as full: the
// largest message the broker takes (its max_payload, 1 MiB), which may no
// longer fit.
const Headroom = 1 << 20

// Usage is the broker's file storage: what the account uses and its limit
// (0 when unknown: an external broker whose account has no limit of its
// own, and the server's limit is not told to clients).
type Usage struct {
	Used  int64 `json:"store_used_bytes"`
	Limit int64 `json:"store_limit_bytes"`
}

// Full reports whether less than Headroom is left below a known limit.
func (u Usage) Full() bool { return u.Limit > 0 && u.Limit-u.Used < Headroom }

// Measure asks the broker what the account's file storage uses and may
// use. serverLimit is the limit to assume when the account has none (the
// embedded server's PUSHGO_MAX_STORE; 0 for unknown).
func Measure(ctx context.Context, js jetstream.JetStream, serverLimit int64) (Usage, error) {
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Used: int64(ai.Store), Limit: ai.Limits.MaxStore}
	// An account with tiered limits (per replica count) is as full as its
	// fullest tier.
	for _, t := range ai.Tiers {
		if t.Limits.MaxStore > 0 && (u.Limit <= 0 || t.Limits.MaxStore-int64(t.Store) < u.Limit-u.Used) {
			u = Usage{Used: int64(t.Store), Limit: t.Limits.MaxStore}
		}
	}
	if u.Limit <= 0 {
		u.Limit = max(serverLimit, 0)
	}
	return u, nil
}

// Disk is the file system under the embedded broker's store, as the
// process that runs it measures it (statfs), and the write error JetStream
// holds, if any. The broker's own limit (Usage) says nothing of it: a disk
// that fills below PUSHGO_MAX_STORE makes JetStream fail a write with
// "no space left on device", after which it answers no write of that
// stream or bucket (the publisher waits out its timeout) until it is
// restarted.
type Disk struct {
	// Dir is the store's directory.
	Dir string `json:"-"`
	// Free is what the server may still write there, Size the file
	// system's size; both 0 when unknown (not measured on this system).
	Free int64 `json:"disk_free_bytes"`
	Size int64 `json:"disk_size_bytes"`
	// WriteErr is the write error JetStream holds ("" when none): a
	// stream or bucket that failed to write refuses every later write
	// until JetStream restarts.
	WriteErr string `json:"store_write_error,omitempty"`
}

// Full reports whether the store cannot take writes for lack of disk:
// less than Headroom is free, or JetStream holds a write error.
func (d Disk) Full() bool { return (d.Size > 0 && d.Free < Headroom) || d.WriteErr != "" }

// Why says what is full, for an operator: the disk and its directory.
func (d Disk) Why() string {
	if d.Size > 0 && d.Free < Headroom {
		s := fmt.Sprintf("the disk under the broker's store %s is full: %d of %d bytes free", d.Dir, max(d.Free, 0), d.Size)
		if d.WriteErr != "" {
			s += "; JetStream failed a write (" + d.WriteErr + ")"
		}
		return s + "; writes are refused (store_full) until space is freed on that disk"
	}
	return fmt.Sprintf("JetStream failed a write to the broker's store %s (%s); writes are refused (store_full) until JetStream is restarted, which the gateway does once that disk has space (%d of %d bytes free now)",
		d.Dir, d.WriteErr, max(d.Free, 0), d.Size)
}
