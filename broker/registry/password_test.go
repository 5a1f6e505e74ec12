package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	p := Argon2Params{Time: 1, Memory: 64, Threads: 1}
	phc := hashPassword("correct-horse", p)
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(phc, "correct-horse") {
		t.Fatalf("unexpected PHC string %q", phc)
	}
	if phc == hashPassword("correct-horse", p) {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, c := range []struct {
		pw   string
		want bool
	}{{"correct-horse", true}, {"correct-horse ", false}, {"Correct-horse", false}, {"", false}} {
		got, err := verifyPassword(phc, c.pw)
		if err != nil || got != c.want {
			t.Errorf("verify(%q) = %v, %v; want %v", c.pw, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=x$c2FsdA$aGFzaA", "$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaA"} {
		if _, err := verifyPassword(bad, "x"); err == nil {
			t.Errorf("verify accepted malformed hash %q", bad)
		}
	}
}

func TestCheckCacheMACDependsOnChannelAndPassword(t *testing.T) {
	c := newCheckCache()
	if c.mac("A", "pw") == c.mac("B", "pw") || c.mac("A", "pw") == c.mac("A", "pw2") || c.mac("A", "pw") != c.mac("A", "pw") {
		t.Fatal("mac does not separate channels and passwords")
	}
	if other := newCheckCache(); other.mac("A", "pw") == c.mac("A", "pw") {
		t.Fatal("mac key is not per process")
	}
}

// The MAC states are reused: a MAC is the HMAC of its channel and
// password alone, whatever was computed before it and beside it.
func TestCheckCacheMACIsHMACOfItsInputsAlone(t *testing.T) {
	c := newCheckCache()
	want := func(channelID, password string) [32]byte {
		h := hmac.New(sha256.New, c.key[:])
		h.Write([]byte(channelID + "\x00" + password))
		var out [32]byte
		h.Sum(out[:0])
		return out
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ch, pw := fmt.Sprintf("ch%d", (g+i)%5), fmt.Sprintf("pw%d", i%7)
				if got := c.mac(ch, pw); got != want(ch, pw) {
					t.Errorf("mac(%q, %q) is not the HMAC of its inputs", ch, pw)
					return
				}
			}
		}()
	}
	wg.Wait()
}
