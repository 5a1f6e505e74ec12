package registry

import (
	"strings"
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
