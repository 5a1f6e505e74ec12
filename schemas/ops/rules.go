package ops

import "fmt"

// Limits of metadata values (PUSHGO_METADATA_VALUE_MAX).
const (
	// DefaultMetadataValueMax is PushGo's limit on one metadata value, in
	// bytes of its text.
	DefaultMetadataValueMax = 512
	// MetadataValueMaxLimit is the most a gateway may allow: the PushGo
	// fork that third-party task plugins use for their cards goes to 16 KiB.
	MetadataValueMaxLimit = 16 << 10
)

// Option adjusts a validation rule to the gateway's configuration. The
// validators without options apply PushGo's rules.
type Option func(*rules)

type rules struct {
	metadataValueMax int
	contentHeadroom  int
}

func newRules(opts []Option) rules {
	r := rules{metadataValueMax: DefaultMetadataValueMax}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// WithMetadataValueMax allows metadata values of up to n bytes; n MUST
// pass CheckMetadataValueMax.
func WithMetadataValueMax(n int) Option { return func(r *rules) { r.metadataValueMax = n } }

// WithContentHeadroom validates as if MaxContentBytes were n bytes
// smaller: for a check made ahead of the operations a report will make,
// whose ids (a 32-character event_id on an update or a close) it cannot
// know yet, so that what passes the check passes as the real operation.
func WithContentHeadroom(n int) Option { return func(r *rules) { r.contentHeadroom = n } }

// CheckMetadataValueMax reports a configured limit out of range.
func CheckMetadataValueMax(n int) error {
	if n < 1 || n > MetadataValueMaxLimit {
		return fmt.Errorf("metadata value max %d: must be 1..%d", n, MetadataValueMaxLimit)
	}
	return nil
}
