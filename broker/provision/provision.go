// Package provision creates the gateway's streams and buckets, defined as data
// in schemas/streams, on a JetStream broker. Every process calls Ensure at
// start, so any of them can be the first to run against a fresh broker.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/streams"
)

// StreamConfig is the JetStream configuration of stream s under options o.
func StreamConfig(s streams.Stream, o streams.Options) jetstream.StreamConfig {
	retention := jetstream.LimitsPolicy
	if s.Retention == streams.WorkQueueRetention {
		retention = jetstream.WorkQueuePolicy
	}
	return jetstream.StreamConfig{
		Name:        s.Name,
		Description: s.Description,
		Subjects:    s.Subjects,
		Retention:   retention,
		Storage:     storage(o.Storage),
		Replicas:    o.Replicas,
		MaxAge:      s.MaxAge,
		Duplicates:  s.Duplicates,
		// The broker stores "no limit" as -1, whatever was sent.
		MaxMsgsPerSubject: perSubjectLimit(s.MaxMsgsPerSubject),
		Discard:           jetstream.DiscardOld,
		AllowDirect:       s.AllowDirect,
		DenyDelete:        s.DenyDelete,
		DenyPurge:         s.DenyPurge,
	}
}

// BucketConfig is the JetStream configuration of bucket b under options o.
func BucketConfig(b streams.Bucket, o streams.Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      b.Name,
		Description: b.Description,
		History:     1,
		TTL:         b.TTL,
		Storage:     storage(o.Storage),
		Replicas:    o.Replicas,
	}
}

// perSubjectLimit is n as the broker holds it: -1 for no limit.
func perSubjectLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func storage(s streams.Storage) jetstream.StorageType {
	if s == streams.MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Ensure creates the streams and buckets that are missing and updates a
// stream only when its settings differ from o. It does not touch what is
// already right: every process of a scaled deployment calls Ensure at
// start, and a needless stream update racing with another process's
// consumer creation is work the broker need not do.
func Ensure(ctx context.Context, js jetstream.JetStream, o streams.Options) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("stream options: %w", err)
	}
	for _, s := range streams.AllStreams(o) {
		if err := ensureStream(ctx, js, StreamConfig(s, o)); err != nil {
			return err
		}
	}
	for _, b := range streams.AllBuckets(o) {
		if err := ensureBucket(ctx, js, BucketConfig(b, o)); err != nil {
			return err
		}
	}
	return nil
}

// JetStream's error codes of a cluster that cannot do a create or update
// for the moment.
const (
	errClusterNoPeers    = 10005 // "no suitable peers for placement": a peer offline, or not yet known
	errClusterNotAvail   = 10008 // "JetStream system temporarily unavailable"
	errClusterNotHandled = 10009 // "JetStream cluster can not handle request": no meta leader yet
)

// Transient reports whether err is a refusal a JetStream cluster gives
// while it forms or while a peer is away (no meta leader yet, too few
// peers online to place the replicas, no answer in time): the same
// request can succeed later, unchanged. A configuration the broker will
// never take (replicas on a single server, a permission) is not.
func Transient(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case errClusterNoPeers, errClusterNotAvail, errClusterNotHandled:
			return true
		}
		return false
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// EnsureWhenReady is Ensure, asked again while the broker refuses it for
// the moment (Transient): a gateway started beside a cluster that is still
// electing its meta leader or waiting for a peer waits for it instead of
// exiting. It logs why it waits at once and then every 10 seconds, and
// returns when Ensure succeeds, fails otherwise, or ctx ends.
func EnsureWhenReady(ctx context.Context, js jetstream.JetStream, o streams.Options, log *slog.Logger) error {
	err := retry(ctx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		err := Ensure(ctx, js, o)
		return Transient(err), err
	}, func(err error) {
		log.Warn("broker cannot create the streams and buckets yet; asking again", "err", err)
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("waiting for the broker to create the streams and buckets: %w", err)
	}
	return err
}

// retry calls try, each call with a time of its own (a request the
// cluster does not answer, with no meta leader, would otherwise wait for
// ctx's end), every `every` until it succeeds, fails with an error it
// says waiting cannot cure (wait false), or ctx ends. say is told the
// error at the first wait and every 10 seconds after.
func retry(ctx context.Context, every time.Duration, try func(context.Context) (wait bool, err error), say func(error)) error {
	const pass, sayEvery = 10 * time.Second, 10 * time.Second
	var said time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, pass)
		wait, err := try(pctx)
		cancel()
		if err == nil || !wait || ctx.Err() != nil {
			return err
		}
		if time.Since(said) >= sayEvery {
			say(err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates && have.Replicas == want.Replicas &&
		have.AllowDirect == want.AllowDirect && slices.Equal(have.Subjects, want.Subjects) &&
		perSubjectLimit(have.MaxMsgsPerSubject) == want.MaxMsgsPerSubject {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return nil
}

// ensureBucket creates the bucket want describes, or gives an existing one
// want's replicas (PUSHGO_REPLICAS raised on a cluster: only the streams
// followed, and losing the one node that held a registry bucket lost the
// channels, devices or tokens). Nothing else of an existing bucket is
// changed.
func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	if _, err := js.KeyValue(ctx, want.Bucket); err == nil {
		return ensureBucketReplicas(ctx, js, want)
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s: %w", want.Bucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, want); err != nil {
		return fmt.Errorf("create bucket %s: %w", want.Bucket, err)
	}
	return nil
}

// ensureBucketReplicas sets the replicas of an existing bucket's stream
// (KV_<bucket>) to want's.
func ensureBucketReplicas(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	name := "KV_" + want.Bucket
	s, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", want.Bucket, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas == max(want.Replicas, 1) {
		return nil
	}
	cfg.Replicas = max(want.Replicas, 1)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update bucket %s: %w", want.Bucket, err)
	}
	return nil
}

// Await waits until every stream in names (a bucket's stream is
// KV_<bucket>) exists, for a process whose broker role may use but not
// create them (a projector or pusher that starts before any ingest
// process, or beside a cluster still forming: Transient): it asks again
// every second and logs what it waits for at once and every 10 seconds.
// It returns when they all exist, the broker refuses otherwise, or ctx
// ends.
func Await(ctx context.Context, js jetstream.JetStream, names []string, log *slog.Logger) error {
	for _, name := range names {
		err := retry(ctx, time.Second, func(ctx context.Context) (bool, error) {
			_, err := js.Stream(ctx, name)
			return errors.Is(err, jetstream.ErrStreamNotFound) || Transient(err), err
		}, func(err error) {
			log.Info("waiting for a stream an ingest process creates", "stream", name, "err", err)
		})
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("waiting for stream %s: %w", name, context.Cause(ctx))
		case err != nil:
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}
