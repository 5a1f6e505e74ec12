package ops

import (
	"strings"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// validateThing validates /thing/create|update|archive|delete (spec §5), in
// the same stable order as validateEvent.
func validateThing(op Name, r *ThingRequest, rl rules) (*Validated, *apierr.Error) {
	if op.Kind() != KindThing {
		return nil, apierr.Fieldf(apierr.InternalError, "op", "%q is not a thing operation", op)
	}
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
	p := &ThingPayload{}

	if op == ThingCreate {
		if r.ThingID != nil {
			return nil, apierr.Field(apierr.ThingIDForbiddenOnCreate, "thing_id")
		}
	} else if p.ThingID, err = requiredID(r.ThingID, "thing_id", apierr.ThingIDRequired, apierr.InvalidThingID); err != nil {
		return nil, err
	}
	if r.ObservedAt == nil {
		return nil, apierr.Field(apierr.ObservedAtRequired, "observed_at")
	}
	p.ObservedAt = int64(*r.ObservedAt)

	if p.Title, err = optionalTitle(r.Title); err != nil {
		return nil, err
	}
	p.Description = description(r.Description)
	if p.Tags, err = tags(r.Tags); err != nil {
		return nil, err
	}
	if p.PrimaryImage, err = primaryImage(r.PrimaryImage); err != nil {
		return nil, err
	}
	if p.Images, err = images(r.Images); err != nil {
		return nil, err
	}
	if err := thingTimes(op, r, p); err != nil {
		return nil, err
	}
	if p.ExternalIDs, err = externalIDs(r.ExternalIDs); err != nil {
		return nil, err
	}
	if p.LocationType, p.LocationValue, err = location(r.LocationType, r.LocationValue); err != nil {
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

	hash, aerr := bodyHash(op, thingHashView(r, c.channelID), rl)
	if aerr != nil {
		return nil, aerr
	}
	return &Validated{
		Op:        op,
		ChannelID: c.channelID,
		Password:  c.password,
		OpID:      c.opID,
		EntityID:  p.ThingID,
		ThingID:   p.ThingID,
		BodyHash:  hash,
		Payload:   p,
	}, nil
}

// thingTimes applies the created_at/deleted_at route rules (seed 002): each
// belongs to one route and defaults to observed_at there.
func thingTimes(op Name, r *ThingRequest, p *ThingPayload) *apierr.Error {
	if r.CreatedAt != nil && op != ThingCreate {
		return apierr.Field(apierr.CreatedAtForbiddenOnUpdate, "created_at")
	}
	if r.DeletedAt != nil && op != ThingDelete {
		return apierr.Field(apierr.DeletedAtForbiddenOnUpdate, "deleted_at")
	}
	switch op {
	case ThingCreate:
		p.CreatedAt = ptr(p.ObservedAt)
		if r.CreatedAt != nil {
			p.CreatedAt = ptr(int64(*r.CreatedAt))
		}
	case ThingDelete:
		p.DeletedAt = ptr(p.ObservedAt)
		if r.DeletedAt != nil {
			p.DeletedAt = ptr(int64(*r.DeletedAt))
		}
	}
	return nil
}

// primaryImage is an optional URL string. Like images it is not parsed as a
// URL (as PushGo): apps may use schemes or relative forms we do not know.
func primaryImage(s *string) (string, *apierr.Error) {
	if s == nil {
		return "", nil
	}
	t := strings.TrimSpace(*s)
	if t == "" || utf8.RuneCountInString(t) > maxURL {
		return "", apierr.Field(apierr.PrimaryImageInvalid, "primary_image")
	}
	return t, nil
}
