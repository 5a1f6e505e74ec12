package ops

import (
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Text must be valid UTF-8. A request decoded from JSON always is (the
// strict decoders refuse anything else), but integrations and compat routes
// build requests by hand from headers, query strings and forms, and one
// invalid byte that got into an operation would fail the encoding of every
// answer that shows it. So the validators check every text member first,
// whatever built the request: a 400 naming the member, before anything is
// appended.

// textMember is one text member of a request: its JSON name and value.
type textMember struct {
	name string
	one  *string
	list []string
}

func one(name string, s *string) textMember   { return textMember{name: name, one: s} }
func many(name string, l []string) textMember { return textMember{name: name, list: l} }
func invalidText(name string) *apierr.Error {
	return apierr.Fieldf(apierr.InvalidJSONData, name, "must be valid UTF-8")
}

// checkText answers the first member holding invalid UTF-8.
func checkText(members ...textMember) *apierr.Error {
	for _, m := range members {
		if m.one != nil && !utf8.ValidString(*m.one) {
			return invalidText(m.name)
		}
		for _, s := range m.list {
			if !utf8.ValidString(s) {
				return invalidText(m.name)
			}
		}
	}
	return nil
}

func (r *EventRequest) checkText() *apierr.Error {
	return checkText(one("channel_id", r.ChannelID), one("password", r.Password), one("op_id", r.OpID),
		one("event_id", r.EventID), one("thing_id", r.ThingID), one("title", r.Title), one("description", r.Description),
		one("status", r.Status), one("message", r.Message), one("severity", r.Severity), many("tags", r.Tags),
		many("images", r.Images), one("ciphertext", r.Ciphertext))
}

func (r *ThingRequest) checkText() *apierr.Error {
	return checkText(one("channel_id", r.ChannelID), one("password", r.Password), one("op_id", r.OpID),
		one("thing_id", r.ThingID), one("title", r.Title), one("description", r.Description), many("tags", r.Tags),
		one("primary_image", r.PrimaryImage), many("images", r.Images), one("location_type", r.LocationType),
		one("location_value", r.LocationValue), one("ciphertext", r.Ciphertext))
}

func (r *MessageRequest) checkText() *apierr.Error {
	return checkText(one("channel_id", r.ChannelID), one("password", r.Password), one("op_id", r.OpID),
		one("thing_id", r.ThingID), one("title", r.Title), one("body", r.Body), one("severity", r.Severity),
		one("url", r.URL), many("images", r.Images), many("tags", r.Tags), one("ciphertext", r.Ciphertext))
}
