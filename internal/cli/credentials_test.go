package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creds.env")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// TestCredentialsPrecedence: flags beat stdin, stdin beats the file, the
// file beats the environment; the server defaults to the local gateway.
func TestCredentialsPrecedence(t *testing.T) {
	env := envOf(map[string]string{
		EnvURL: "http://env:1", EnvChannelID: "ENVCHANNEL", EnvPassword: "env-password", EnvToken: "env-token",
	})
	c, err := loadCredentials(credentialSources{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	if c != (Credentials{Server: "http://env:1", ChannelID: "ENVCHANNEL", Password: "env-password", Token: "env-token"}) {
		t.Fatalf("from the environment: %+v", c)
	}

	file := writeFile(t, "PUSHGO_CHANNEL_ID=FILECHANNEL\nPUSHGO_CHANNEL_PASSWORD=file-password\n", 0o600)
	c, err = loadCredentials(credentialSources{Getenv: env, File: file})
	if err != nil {
		t.Fatal(err)
	}
	if c != (Credentials{Server: "http://env:1", ChannelID: "FILECHANNEL", Password: "file-password", Token: "env-token"}) {
		t.Fatalf("file over environment: %+v", c)
	}

	c, err = loadCredentials(credentialSources{Getenv: env, File: file, PasswordStdin: true, Stdin: strings.NewReader("stdin-password\n"),
		ServerFlag: "http://flag:2", ChannelFlag: "FLAGCHANNEL"})
	if err != nil {
		t.Fatal(err)
	}
	if c != (Credentials{Server: "http://flag:2", ChannelID: "FLAGCHANNEL", Password: "stdin-password", Token: "env-token"}) {
		t.Fatalf("flags and stdin over the file: %+v", c)
	}

	// PUSHGO_CREDENTIALS names the file when --credentials is not given.
	c, err = loadCredentials(credentialSources{Getenv: envOf(map[string]string{EnvCredentials: file})})
	if err != nil {
		t.Fatal(err)
	}
	if c != (Credentials{Server: DefaultServer, ChannelID: "FILECHANNEL", Password: "file-password"}) {
		t.Fatalf("PUSHGO_CREDENTIALS: %+v", c)
	}
}

// TestCredentialsFileOthersCanRead: a credentials file its group or
// others can read or write is refused (as ssh refuses such a key), with
// the chmod that fixes it; the owner's modes are accepted.
func TestCredentialsFileOthersCanRead(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620} {
		p := writeFile(t, "PUSHGO_CHANNEL_PASSWORD=secret-password\n", mode)
		_, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: p})
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v, want a usage error saying chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := writeFile(t, "PUSHGO_CHANNEL_PASSWORD=secret-password\n", mode)
		c, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: p})
		if err != nil || c.Password != "secret-password" {
			t.Errorf("mode %04o: %+v %v, want accepted", mode, c, err)
		}
	}
	_, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: filepath.Join(t.TempDir(), "missing")})
	if !errors.As(err, new(*usageError)) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestCredentialsFileForm: comments, export, quotes; unknown keys, keys
// set twice and lines without = are refused with their line number; a
// file written by --save reads back to the same credentials, whatever the
// password holds.
func TestCredentialsFileForm(t *testing.T) {
	m, err := parseCredentials("f", []byte("# comment\n\nexport PUSHGO_CHANNEL_ID=ABC\nPUSHGO_CHANNEL_PASSWORD='pass word'\n  PUSHGO_TOKEN = \"tok\\\"en\"\nPUSHGO_URL=http://h:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{EnvChannelID: "ABC", EnvPassword: "pass word", EnvToken: `tok"en`, EnvURL: "http://h:1"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	for _, bad := range []struct{ text, says string }{
		{"PUSHGO_PASSWORD=x\n", `line 1: unknown key "PUSHGO_PASSWORD"`},
		{"# c\nPUSHGO_CHANNEL_ID=a\nPUSHGO_CHANNEL_ID=b\n", "line 3: PUSHGO_CHANNEL_ID set twice"},
		{"PUSHGO_CHANNEL_ID\n", "line 1: want KEY=VALUE"},
	} {
		if _, err := parseCredentials("f", []byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%q: %v, want %q", bad.text, err, bad.says)
		}
	}
	for _, pw := range []string{"plain-password", "with space and $HOME", `it's "quoted"`, "ünïcode-пароль", "a=b#c"} {
		p := filepath.Join(t.TempDir(), "saved.env")
		c := Credentials{Server: "http://127.0.0.1:8080", ChannelID: "CH", Password: pw}
		if err := writeCredentialsFile(p, c); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("saved with mode %04o, want 0600", fi.Mode().Perm())
		}
		got, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: p})
		if err != nil || got != c {
			t.Errorf("password %q: read back %+v (%v), want %+v", pw, got, err, c)
		}
		if err := writeCredentialsFile(p, c); err == nil {
			t.Errorf("writeCredentialsFile overwrote an existing file")
		}
	}
}

// TestPasswordStdin: the input without its line end; several lines or
// nothing refused.
func TestPasswordStdin(t *testing.T) {
	for in, want := range map[string]string{"pw-one\n": "pw-one", "pw-two\r\n": "pw-two", "pw-three": "pw-three", " spaced pw \n": " spaced pw "} {
		got, err := readPasswordStdin(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "a\nb\n", strings.Repeat("x", 5000)} {
		if _, err := readPasswordStdin(strings.NewReader(in)); !errors.As(err, new(*usageError)) {
			t.Errorf("%q: %v, want a usage error", in, err)
		}
	}
}
