package ops

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

func validateChannelCreate(r *ChannelCreateRequest) (*ChannelCreate, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	pw, err := validatePassword(r.Password)
	if err != nil {
		return nil, err
	}
	name, err := channelName(r.ChannelName)
	if err != nil {
		return nil, err
	}
	return &ChannelCreate{Name: name, Password: pw}, nil
}

func validateChannelRename(r *ChannelRenameRequest) (*ChannelRename, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	id, err := validateChannelID(r.ChannelID)
	if err != nil {
		return nil, err
	}
	pw, err := validatePassword(r.Password)
	if err != nil {
		return nil, err
	}
	name, err := channelName(r.ChannelName)
	if err != nil {
		return nil, err
	}
	return &ChannelRename{ChannelID: id, Password: pw, Name: name}, nil
}

// channelName: trimmed, 1-128 characters, no control characters (spec §2).
// Names are shown in app lists and notifications, where a newline or an
// escape sequence would break the layout.
func channelName(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(apierr.ChannelNameRequired, "channel_name")
	}
	n := strings.TrimSpace(*s)
	if utf8.RuneCountInString(n) > maxChannelName || strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return "", apierr.Field(apierr.InvalidChannelName, "channel_name")
	}
	return n, nil
}
