package ops

import (
	"strings"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
)

// Limits of the shared value rules (spec §1, §4-§6). Lengths are in
// characters (runes) unless the name says bytes.
const (
	maxTitle        = 256
	maxStatus       = 24
	maxMessage      = 512
	maxListItems    = 32
	maxTag          = 64
	maxURL          = 2048
	maxCiphertextB  = 16 << 10
	minPasswordB    = 8
	maxPasswordB    = 128
	maxChannelName  = 128
	maxMetadataKeyB = 64
)

func validateChannelID(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(apierr.ChannelIDRequired, "channel_id")
	}
	id, ok := ids.NormalizeChannelID(strings.TrimSpace(*s))
	if !ok {
		return "", apierr.Field(apierr.InvalidChannelID, "channel_id")
	}
	return id, nil
}

func validatePassword(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(apierr.PasswordRequired, "password")
	}
	p := strings.TrimSpace(*s)
	if len(p) < minPasswordB || len(p) > maxPasswordB {
		return "", apierr.Field(apierr.InvalidPassword, "password")
	}
	return p, nil
}

// validateOpID returns "" for an absent op_id; ingest then generates one.
// A present but blank op_id is a client bug, so it is rejected rather than
// silently replaced.
func validateOpID(s *string) (string, *apierr.Error) {
	if s == nil {
		return "", nil
	}
	id := strings.TrimSpace(*s)
	if !ids.ValidOpID(id) {
		return "", apierr.Field(apierr.InvalidOpID, "op_id")
	}
	return id, nil
}

// credentials are the fields every send route starts with.
type credentials struct {
	channelID, password, opID string
}

func validateCredentials(channelID, password, opID *string) (credentials, *apierr.Error) {
	var c credentials
	var err *apierr.Error
	if c.channelID, err = validateChannelID(channelID); err != nil {
		return c, err
	}
	if c.password, err = validatePassword(password); err != nil {
		return c, err
	}
	if c.opID, err = validateOpID(opID); err != nil {
		return c, err
	}
	return c, nil
}

// requiredID validates the id an update/close/archive/delete targets.
func requiredID(s *string, field string, required, invalid apierr.Code) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(required, field)
	}
	return optionalID(s, field, invalid)
}

// optionalID validates an id that may be absent (a thing_id link); present
// but blank is invalid, since an id can never be empty.
func optionalID(s *string, field string, invalid apierr.Code) (string, *apierr.Error) {
	if s == nil {
		return "", nil
	}
	id := strings.TrimSpace(*s)
	if !ids.ValidEntityID(id) {
		return "", apierr.Field(invalid, field)
	}
	return id, nil
}

// requiredText validates a required trimmed string of at most max runes.
func requiredText(s *string, field string, max int, required, tooLong apierr.Code) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(required, field)
	}
	t := strings.TrimSpace(*s)
	if utf8.RuneCountInString(t) > max {
		return "", apierr.Field(tooLong, field)
	}
	return t, nil
}

// optionalTitle validates a title that may be absent. A title sent blank is
// rejected: it cannot clear anything (payload titles are omitempty), so it
// is almost certainly a templating mistake the sender wants to hear about.
func optionalTitle(s *string) (string, *apierr.Error) {
	if s == nil {
		return "", nil
	}
	if strings.TrimSpace(*s) == "" {
		return "", apierr.Fieldf(apierr.TitleRequired, "title", "must not be empty when sent")
	}
	return requiredText(s, "title", maxTitle, apierr.TitleRequired, apierr.TitleTooLong)
}

// description: an empty string counts as absent (spec §1, seed 001).
func description(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func validSeverity(s string) bool {
	switch s {
	case SeverityCritical, SeverityHigh, SeverityNormal, SeverityLow:
		return true
	}
	return false
}

// severity validates a present severity value, in any letter case (as
// PushGo's normalize_event_severity: trimmed, ASCII lower-cased).
func severity(s string) (string, *apierr.Error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if !validSeverity(t) {
		return "", apierr.Field(apierr.InvalidSeverity, "severity")
	}
	return t, nil
}

// ciphertext is opaque (E2EE): checked for size only. White space around
// it is taken off, as PushGo does (Base64 holds none, and the Apple app
// refused to decode an envelope ending in the newline a shell's base64
// leaves), nothing else.
func ciphertext(s *string) (string, *apierr.Error) {
	if s == nil {
		return "", nil
	}
	t := strings.TrimSpace(*s)
	if t == "" {
		return "", apierr.Field(apierr.InvalidCiphertext, "ciphertext")
	}
	if len(t) > maxCiphertextB {
		return "", apierr.Field(apierr.CiphertextTooLong, "ciphertext")
	}
	return t, nil
}

func ptr[T any](v T) *T { return &v }

// Truncate cuts s to at most n characters (runes), never inside one, and
// drops invalid UTF-8 at the cut. Integrations use it to shorten a tool's
// text to the PushGo limits: a report is shortened, never refused for a
// long title or message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return strings.ToValidUTF8(s[:j], "")
		}
		i++
	}
	return s
}
