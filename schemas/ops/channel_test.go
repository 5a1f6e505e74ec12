package ops

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// TestChannelRules covers spec §2's channel_name rule on /channel/create
// and /channel/rename, and the credentials those routes share.
func TestChannelRules(t *testing.T) {
	create := `{"channel_name":"Home","password":"` + pw + `"}`
	rename := `{"channel_id":"` + strings.ToLower(cid) + `","password":"` + pw + `","channel_name":"Home"}`
	cases := []struct {
		name, route, body string
		status            int
		code              apierr.Code
		wantName          string
	}{
		{"create/ok", "create", create, 200, "", "Home"},
		{"create/name trimmed", "create", set(create, "channel_name", `"  Home lab  "`), 200, "", "Home lab"},
		{"create/name 128 chars", "create", set(create, "channel_name", q(strings.Repeat("家", 128))), 200, "", strings.Repeat("家", 128)},
		{"create/name absent", "create", del(create, "channel_name"), 400, apierr.ChannelNameRequired, ""},
		{"create/name blank", "create", set(create, "channel_name", `"  "`), 400, apierr.ChannelNameRequired, ""},
		{"create/name 129 chars", "create", set(create, "channel_name", q(strings.Repeat("家", 129))), 400, apierr.InvalidChannelName, ""},
		{"create/name newline", "create", set(create, "channel_name", `"Home\nlab"`), 400, apierr.InvalidChannelName, ""},
		{"create/name escape", "create", set(create, "channel_name", `"Home\u001b[31m"`), 400, apierr.InvalidChannelName, ""},
		{"create/password absent", "create", del(create, "password"), 400, apierr.PasswordRequired, ""},
		{"create/password short", "create", set(create, "password", `"short"`), 400, apierr.InvalidPassword, ""},
		{"create/unknown member", "create", set(create, "channel_id", q(cid)), 400, apierr.InvalidJSONData, ""},
		{"rename/ok", "rename", rename, 200, "", "Home"},
		{"rename/channel_id absent", "rename", del(rename, "channel_id"), 400, apierr.ChannelIDRequired, ""},
		{"rename/channel_id bad", "rename", set(rename, "channel_id", `"nope"`), 400, apierr.InvalidChannelID, ""},
		{"rename/password absent", "rename", del(rename, "password"), 400, apierr.PasswordRequired, ""},
		{"rename/name absent", "rename", del(rename, "channel_name"), 400, apierr.ChannelNameRequired, ""},
		{"rename/name control", "rename", set(rename, "channel_name", `"a\u0000b"`), 400, apierr.InvalidChannelName, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotName string
			var err *apierr.Error
			if c.route == "create" {
				var r ChannelCreateRequest
				if err = wire.Decode([]byte(c.body), &r); err == nil {
					var v *ChannelCreate
					if v, err = ValidateChannelCreate(&r); err == nil {
						gotName = v.Name
						if v.Password != pw {
							t.Errorf("password %q", v.Password)
						}
					}
				}
			} else {
				var r ChannelRenameRequest
				if err = wire.Decode([]byte(c.body), &r); err == nil {
					var v *ChannelRename
					if v, err = ValidateChannelRename(&r); err == nil {
						gotName = v.Name
						if v.ChannelID != cid {
							t.Errorf("channel id %q, want canonical %q", v.ChannelID, cid)
						}
					}
				}
			}
			status, code := 200, apierr.Code("")
			if err != nil {
				status, code = err.Status(), err.Code
			}
			if status != c.status || code != c.code {
				t.Fatalf("got %d %q (%v), want %d %q", status, code, err, c.status, c.code)
			}
			if err == nil && gotName != c.wantName {
				t.Errorf("name %q, want %q", gotName, c.wantName)
			}
		})
	}
}

func TestValidateChannelIDAndPassword(t *testing.T) {
	s := func(v string) *string { return &v }
	if got, err := ValidateChannelID(s(" 01arz3ndektsv4rrffq69g5fav ")); err != nil || got != cid {
		t.Errorf("ValidateChannelID = %q, %v", got, err)
	}
	if _, err := ValidateChannelID(nil); err == nil || err.Code != apierr.ChannelIDRequired {
		t.Errorf("nil channel id: %v", err)
	}
	if got, err := ValidatePassword(s(" " + pw + " ")); err != nil || got != pw {
		t.Errorf("ValidatePassword = %q, %v", got, err)
	}
	if _, err := ValidatePassword(nil); err == nil || err.Code != apierr.PasswordRequired {
		t.Errorf("nil password: %v", err)
	}
}
