package compat

import (
	"strings"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// setKey puts the channel credentials of a compat key into req: PushGo's
// "<channel_id>:<password>" (CompatKey::parse in
// src/api/handlers/message/compat/mod.rs), given where the tool puts its
// secret (field names it in errors: topic, key, sendkey, device_key). The
// key is split at its first colon (channel ids have none; passwords may),
// and each side is trimmed; a key without both is 400 compat_key_invalid,
// PushGo's code. The parts' formats are then checked by
// ops.ValidateMessage like POST /message's channel_id and password.
func setKey(req *ops.MessageRequest, raw, field string) *apierr.Error {
	const shape = "must be <channel_id>:<password>"
	id, password, ok := strings.Cut(strings.TrimSpace(raw), ":")
	id, password = strings.TrimSpace(id), strings.TrimSpace(password)
	switch {
	case id == "":
		return apierr.Fieldf(apierr.CompatKeyInvalid, field, "%s; the channel id is missing", shape)
	case !ok || password == "":
		return apierr.Fieldf(apierr.CompatKeyInvalid, field, "%s; the password is missing", shape)
	}
	req.ChannelID, req.Password = &id, &password
	return nil
}
