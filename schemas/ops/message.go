package ops

import (
	"net/url"
	"strings"
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

// messageURL: optional; blank is ignored (as PushGo); otherwise an absolute
// http(s) URL, since it is opened by the app on tap.
func messageURL(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", nil
	}
	t := strings.TrimSpace(*s)
	if utf8.RuneCountInString(t) > maxURL {
		return "", apierr.Field(apierr.URLInvalid, "url")
	}
	u, err := url.Parse(t)
	if err != nil || u.Host == "" || !(strings.EqualFold(u.Scheme, "http") || strings.EqualFold(u.Scheme, "https")) {
		return "", apierr.Field(apierr.URLInvalid, "url")
	}
	return t, nil
}
