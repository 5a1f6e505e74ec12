package ops

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// maxTTLMillis caps how long a message may wait for delivery (spec §6).
const maxTTLMillis = 30 * 24 * 60 * 60 * 1000

// validateMessage validates POST /message and GET /message (spec §6). now
// (ms) fills occurred_at and bounds ttl.
func validateMessage(r *MessageRequest, now int64, rl rules) (*Validated, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	if err := r.checkText(); err != nil {
		return nil, err
	}
	c, err := validateCredentials(r.ChannelID, r.Password, r.OpID)
	if err != nil {
		return nil, err
	}
	p := &MessagePayload{}

	if p.ThingID, err = optionalID(r.ThingID, "thing_id", apierr.InvalidThingID); err != nil {
		return nil, err
	}
	if p.Title, err = requiredText(r.Title, "title", maxTitle, apierr.TitleRequired, apierr.TitleTooLong); err != nil {
		return nil, err
	}
	// Markdown: leading indentation and trailing line breaks may matter, so
	// the body is kept as sent; only an all-blank body counts as absent.
	if r.Body != nil && strings.TrimSpace(*r.Body) != "" {
		p.Body = *r.Body
	}
	p.Severity = SeverityNormal
	if r.Severity != nil {
		if p.Severity, err = severity(*r.Severity); err != nil {
			return nil, err
		}
	}
	switch {
	case r.OccurredAt != nil:
		p.OccurredAt = int64(*r.OccurredAt)
	case p.ThingID != "":
		// A message about a thing lands in the thing's timeline, which is
		// ordered by when things happened, not by when we heard about them.
		return nil, apierr.Field(apierr.OccurredAtRequired, "occurred_at")
	default:
		p.OccurredAt = now
	}
	if p.URL, err = messageURL(r.URL); err != nil {
		return nil, err
	}
	if p.Images, err = images(r.Images); err != nil {
		return nil, err
	}
	if p.Tags, err = tags(r.Tags); err != nil {
		return nil, err
	}
	if p.Metadata, err = metadata(r.Metadata, rl); err != nil {
		return nil, err
	}
	if p.Ciphertext, err = ciphertext(r.Ciphertext); err != nil {
		return nil, err
	}
	var refuseIfNew *apierr.Error
	if r.TTL != nil {
		ttl := int64(*r.TTL)
		if ttl <= now {
			// A retry of a message stored before its ttl passed is
			// answered as the first time (Validated.RefuseIfNew).
			if c.opID == "" {
				return nil, apierr.Field(apierr.TTLExpired, "ttl")
			}
			refuseIfNew = apierr.Field(apierr.TTLExpired, "ttl")
		}
		p.TTL = ptr(min(ttl, now+maxTTLMillis))
	}

	hash, aerr := bodyHash(MessageCreate, messageHashView(r, c.channelID), rl)
	if aerr != nil {
		return nil, aerr
	}
	return &Validated{
		Op:        MessageCreate,
		ChannelID: c.channelID,
		Password:  c.password,
		OpID:      c.opID,
		ThingID:   p.ThingID,
		BodyHash:  hash,
		Payload:   p,

		RefuseIfNew: refuseIfNew,
	}, nil
}

// messageURL: optional; blank is ignored (as PushGo); otherwise a link the
// apps open on tap, as they decide (Apple's URLSanitizer, Android's
// ExternalNavigation): http(s), ftp(s), mailto:, tel:, sms:, an app's own
// scheme, or a bare host they open as https. PushGo takes any text; this
// gateway took http(s) only until 5 December, and refused a sender's
// mailto: link that PushGo took. Refused still: what does not parse as a
// URL, one longer than the apps open (4096 characters), and the schemes
// both apps block (a script's or a local file's).
func messageURL(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", nil
	}
	t := strings.TrimSpace(*s)
	if utf8.RuneCountInString(t) > maxLinkURL {
		return "", apierr.Field(apierr.URLInvalid, "url")
	}
	u, err := url.Parse(t)
	if err != nil || blockedURLSchemes[strings.ToLower(u.Scheme)] || strings.ContainsFunc(t, unicode.IsControl) {
		return "", apierr.Field(apierr.URLInvalid, "url")
	}
	switch strings.ToLower(u.Scheme) {
	case "":
		// The apps open a bare host as https (example.com/status), and
		// nothing else without a scheme (a relative path).
		host, _, _ := strings.Cut(t, "/")
		host, _, _ = strings.Cut(host, ":")
		if !bareHost.MatchString(host) {
			return "", apierr.Field(apierr.URLInvalid, "url")
		}
	case "http", "https", "ftp", "ftps":
		if u.Host == "" {
			return "", apierr.Field(apierr.URLInvalid, "url")
		}
	}
	return t, nil
}

// bareHost is a host the apps open as https without a scheme (Android's
// CandidateHostPattern).
var bareHost = regexp.MustCompile(`^[A-Za-z0-9.-]+\.[A-Za-z]{2,63}$`)

// MessageURLValid reports whether u is a link a message's url takes
// (messageURL): not blank, and one the apps open.
func MessageURLValid(u string) bool {
	if strings.TrimSpace(u) == "" {
		return false
	}
	_, err := messageURL(&u)
	return err == nil
}

// maxLinkURL is the longest link the apps open (URLSanitizer.maxURLLength).
const maxLinkURL = 4096

// blockedURLSchemes are the schemes the apps never open
// (AppConstants.swift blockedOpenSchemes).
var blockedURLSchemes = map[string]bool{"javascript": true, "data": true, "file": true, "content": true, "intent": true, "vbscript": true}
