package ops

import (
	"github.com/pushgo/gateway/schemas/apierr"
)

// validateEvent validates /event/create|update|close (spec §4). Checks run
// in a fixed order so the first error reported is stable: credentials, ids,
// route-required fields, then the remaining fields in struct order.
// validateEventAs validates an event request; an integration's request
// (withPassword false) carries no password: the integration token has
// authorized the channel. now (ms, > 0) is the event_time of a close that
// names none (closeTimeDefault); 0 requires it.
func validateEventAs(op Name, r *EventRequest, withPassword bool, now int64, rl rules) (*Validated, *apierr.Error) {
	if op.Kind() != KindEvent {
		return nil, apierr.Fieldf(apierr.InternalError, "op", "%q is not an event operation", op)
	}
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	if err := r.checkText(); err != nil {
		return nil, err
	}
	var c credentials
	var err *apierr.Error
	if withPassword {
		c, err = validateCredentials(r.ChannelID, r.Password, r.OpID)
	} else if r.Password != nil {
		err = apierr.Fieldf(apierr.InvalidJSONData, "password", "an integration operation carries no password")
	} else if c.channelID, err = validateChannelID(r.ChannelID); err == nil {
		c.opID, err = validateOpID(r.OpID)
	}
	if err != nil {
		return nil, err
	}
	p := &EventPayload{}

	if op == EventCreate {
		// Ingest derives the id of a created event from the op_id.
		if r.EventID != nil {
			return nil, apierr.Field(apierr.EventIDForbiddenOnCreate, "event_id")
		}
	} else if p.EventID, err = requiredID(r.EventID, "event_id", apierr.EventIDRequired, apierr.InvalidEventID); err != nil {
		return nil, err
	}
	if p.ThingID, err = optionalID(r.ThingID, "thing_id", apierr.InvalidThingID); err != nil {
		return nil, err
	}

	if op == EventCreate {
		p.Title, err = requiredText(r.Title, "title", maxTitle, apierr.TitleRequired, apierr.TitleTooLong)
	} else {
		p.Title, err = optionalTitle(r.Title)
	}
	if err != nil {
		return nil, err
	}
	if p.Status, err = requiredText(r.Status, "status", maxStatus, apierr.StatusRequired, apierr.StatusTooLong); err != nil {
		return nil, err
	}
	if p.Message, err = requiredText(r.Message, "message", maxMessage, apierr.MessageRequired, apierr.MessageTooLong); err != nil {
		return nil, err
	}
	if r.Severity == nil {
		return nil, apierr.Field(apierr.SeverityRequired, "severity")
	}
	if p.Severity, err = severity(*r.Severity); err != nil {
		return nil, err
	}
	switch {
	case r.EventTime != nil:
		p.EventTime = int64(*r.EventTime)
	case op == EventClose && now > 0:
		// The Android app (1.2.2) closes an event from its UI with no
		// event_time (ChannelSubscriptionRepository.kt, closeEvent): the
		// close happened when it was sent. The body hash is the request's,
		// so a retry without it is still the same body.
		p.EventTime = now
	default:
		return nil, apierr.Field(apierr.EventTimeRequired, "event_time")
	}

	p.Description = description(r.Description)
	if err := eventTimes(op, r, p); err != nil {
		return nil, err
	}
	if p.Tags, err = tags(r.Tags); err != nil {
		return nil, err
	}
	if p.Images, err = images(r.Images); err != nil {
		return nil, err
	}
	if p.Attrs, err = attrs(r.Attrs); err != nil {
		return nil, err
	}
	if p.Metadata, err = metadata(r.Metadata, rl); err != nil {
		return nil, err
	}
	if p.Ciphertext, err = ciphertext(r.Ciphertext); err != nil {
		return nil, err
	}

	hash, aerr := bodyHash(op, eventHashView(r, c.channelID), rl)
	if aerr != nil {
		return nil, aerr
	}
	return &Validated{
		Op:        op,
		ChannelID: c.channelID,
		Password:  c.password,
		OpID:      c.opID,
		EntityID:  p.EventID,
		ThingID:   p.ThingID,
		BodyHash:  hash,
		Payload:   p,
	}, nil
}

// eventTimes applies the started_at/ended_at route rules (seed 001): each
// belongs to one route and defaults to event_time there, so the payload
// always carries the lifecycle bound of the route and never the other one.
func eventTimes(op Name, r *EventRequest, p *EventPayload) *apierr.Error {
	switch op {
	case EventCreate:
		if r.EndedAt != nil {
			return apierr.Field(apierr.EndedAtForbiddenOnCreate, "ended_at")
		}
		p.StartedAt = ptr(p.EventTime)
		if r.StartedAt != nil {
			p.StartedAt = ptr(int64(*r.StartedAt))
		}
	case EventUpdate:
		if r.StartedAt != nil {
			return apierr.Field(apierr.EventTemporalFieldsForbiddenOnUpdate, "started_at")
		}
		if r.EndedAt != nil {
			return apierr.Field(apierr.EventTemporalFieldsForbiddenOnUpdate, "ended_at")
		}
	case EventClose:
		if r.StartedAt != nil {
			return apierr.Field(apierr.StartedAtForbiddenOnClose, "started_at")
		}
		p.EndedAt = ptr(p.EventTime)
		if r.EndedAt != nil {
			p.EndedAt = ptr(int64(*r.EndedAt))
		}
	}
	return nil
}
