package apns

import (
	"testing"
	"time"

	"github.com/sideshow/apns2/token"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// A .p8 key's token called expired is signed again only when it is old
// enough for Apple to accept a new one.
func TestKeySourceResignsOnlyAnOldToken(t *testing.T) {
	key, err := token.AuthKeyFromBytes(sendertest.APNsKey(t))
	if err != nil {
		t.Fatal(err)
	}
	k := keySource{t: &token.Token{AuthKey: key, KeyID: "KEY1234567", TeamID: "TEAM123456"}}
	young, err := k.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	k.Invalidate(young)
	if now, _ := k.Token(t.Context()); now != young {
		t.Fatal("a token signed moments ago was signed again")
	}
	k.t.IssuedAt -= int64((minResign + time.Second) / time.Second)
	old := k.t.Bearer
	k.Invalidate(old)
	if now, _ := k.Token(t.Context()); now == old {
		t.Fatal("a token older than 20 minutes called expired was not signed again")
	}
}
