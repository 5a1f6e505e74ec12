package cli

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
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
	// The environment's token is for its server, http://env:1: not sent to
	// the flag's.
	if c != (Credentials{Server: "http://flag:2", ChannelID: "FLAGCHANNEL", Password: "stdin-password", Withheld: "the API token given for http://env:1"}) {
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

// TestSecretsGoOnlyToTheirServer: a secret from a source that names a
// server (PUSHGO_URL in the environment or in a credentials file) is not
// sent to another (a file naming gateway B took gateway A's exported
// token along to B); a source that names none binds its secrets to none.
func TestSecretsGoOnlyToTheirServer(t *testing.T) {
	env := envOf(map[string]string{EnvURL: "http://a.example:8080", EnvToken: "token-of-a", EnvPassword: "password-of-a"})
	fileB := writeFile(t, "PUSHGO_URL=http://b.example\nPUSHGO_CHANNEL_ID=CHB\n", 0o600)
	c, err := loadCredentials(credentialSources{Getenv: env, File: fileB})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "" || c.Password != "" || !strings.Contains(c.Withheld, "http://a.example:8080") {
		t.Fatalf("a file naming gateway B, the environment's secrets for A: %+v", c)
	}
	// The same server, spelt with a trailing slash and capitals: sent.
	c, err = loadCredentials(credentialSources{Getenv: env, ServerFlag: "HTTP://A.example:8080/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "token-of-a" || c.Password != "password-of-a" || c.Withheld != "" {
		t.Fatalf("--server naming A again: %+v", c)
	}
	// A file's secrets go to the file's server only.
	fileBSecrets := writeFile(t, "PUSHGO_URL=http://b.example\nPUSHGO_CHANNEL_PASSWORD=password-of-b\n", 0o600)
	c, err = loadCredentials(credentialSources{Getenv: envOf(nil), File: fileBSecrets, ServerFlag: "http://c.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Password != "" || !strings.Contains(c.Withheld, "http://b.example") {
		t.Fatalf("--server C over a file of B's: %+v", c)
	}
	// No server named with the secrets: they go where the flags say.
	c, err = loadCredentials(credentialSources{Getenv: envOf(map[string]string{EnvToken: "unbound"}), ServerFlag: "http://c.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "unbound" || c.Withheld != "" {
		t.Fatalf("a token exported with no PUSHGO_URL: %+v", c)
	}

	// End to end: the stub at B receives no Authorization header, and the
	// user is told why.
	var got http.Header
	_, srv := newStub(t, func(_ int, r stubRequest) (int, map[string]string, string) {
		got = r.Header
		return okAnswer(`{"op_id":"x","message_id":"m","channel_id":"CHB","accepted":true}`)
	})
	file := writeFile(t, "PUSHGO_URL="+srv.URL+"\nPUSHGO_CHANNEL_ID=CHB\nPUSHGO_CHANNEL_PASSWORD=password-of-b\n", 0o600)
	r := runMain(t, map[string]string{EnvURL: "http://a.example:8080", EnvToken: "token-of-a"}, "", "send", "--title", "x", "--credentials", file)
	if r.code != 0 || got.Get("Authorization") != "" || !strings.Contains(r.stderr, "the API token given for http://a.example:8080 is not sent to") {
		t.Fatalf("exit %d, Authorization %q, stderr %q", r.code, got.Get("Authorization"), r.stderr)
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

// TestSavedFileIsShellSafe: a file written by --save reads back to the
// same password whatever it holds (quotes, $, `, \, blanks, non-ASCII),
// and a POSIX shell sourcing it gets the same bytes and runs nothing.
func TestSavedFileIsShellSafe(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("no sh to source the file with: ", err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	for _, pw := range []string{
		"plain-password", "it's", `'`, `''`, `a'b'c`, `"double"`, `it's "both"`, "$HOME", "$(touch " + marker + ")",
		"it's $(touch " + marker + ")", "`touch " + marker + "`", `back\slash\`, `\'`, "with  two spaces ", "\ttab",
		"ünïcode-пароль-密码", "a=b#c # not a comment", "~user", "semi;colon&amp|pipe<>()", `!bang`, "*?[glob]",
	} {
		p := filepath.Join(t.TempDir(), "saved.env")
		c := Credentials{Server: "http://127.0.0.1:8080", ChannelID: "CH", Password: pw, Token: "tok'" + pw}
		if err := writeCredentialsFile(p, c); err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		got, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: p})
		if err != nil || got != c {
			t.Errorf("password %q: read back %+v (%v), want %+v", pw, got, err, c)
		}
		out, err := exec.Command(sh, "-c", `. "$1"; printf %s "$PUSHGO_CHANNEL_PASSWORD"`, "sh", p).CombinedOutput()
		if err != nil || string(out) != pw {
			b, _ := os.ReadFile(p)
			t.Errorf("password %q: sh sourcing the file printed %q (%v); the file:\n%s", pw, out, err, b)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("password %q: sourcing the file ran a command", pw)
		}
	}
	if err := writeCredentialsFile(filepath.Join(t.TempDir(), "nl.env"), Credentials{Password: "line\nbreak"}); err == nil {
		t.Error("a password with a line break was written")
	}
}

// TestCredentialsFileShellForms: hand-written values are read as a shell
// reads them (mixed quoting, escapes, a trailing comment), and what a shell
// would expand or run differently is refused rather than read otherwise.
func TestCredentialsFileShellForms(t *testing.T) {
	for in, want := range map[string]string{
		`'a'"b"c`:                         "abc",
		`'it'\''s'`:                       "it's",
		`"a \"q\" \$ \` + "`" + ` \\ \n"`: `a "q" $ ` + "` \\ \\n",
		`plain # comment`:                 "plain",
		`a\ b`:                            "a b",
		`""`:                              "",
	} {
		m, err := parseCredentials("f", []byte(EnvPassword+"="+in+"\n"))
		if err != nil || m[EnvPassword] != want {
			t.Errorf("%s: %q %v, want %q", in, m[EnvPassword], err, want)
		}
	}
	for _, in := range []string{`pa$$word`, `$(id)`, "`id`", `"$HOME"`, "\"`id`\"", `a b`, `'open`, `"open`, `~/x`, `a;b`, `trailing\`} {
		if _, err := parseCredentials("f", []byte(EnvPassword+"="+in+"\n")); !errors.As(err, new(*usageError)) {
			t.Errorf("%s: %v, want refused", in, err)
		}
	}
}

// TestSaveCreatedBeforeTheRequest: channel create --save creates its file
// before sending: a path that exists or cannot be created is exit 2 with
// nothing sent; a create that fails leaves no file; one that succeeds
// leaves a complete file, mode 0600.
func TestSaveCreatedBeforeTheRequest(t *testing.T) {
	stub, srv := newStub(t, func(_ int, r stubRequest) (int, map[string]string, string) {
		if r.Body["channel_name"] == "refused" {
			return failAnswer(403, "password_mismatch", "no")
		}
		return okAnswer(`{"channel_id":"CH","channel_name":"home","created":true}`)
	})
	env := map[string]string{EnvURL: srv.URL, EnvPassword: "it's a $(secret)"}
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.env")
	if err := os.WriteFile(existing, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing", "x.env"), existing, dir} {
		r := runMain(t, env, "", "channel", "create", "--name", "home", "--save", path)
		if r.code != ExitUsage || len(stub.got()) != 0 || !strings.Contains(r.stderr, "--save") {
			t.Errorf("--save %s: exit %d after %d requests (stderr %q); want 2 with nothing sent", path, r.code, len(stub.got()), r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("--save made a directory")
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("--save changed an existing file: %q", b)
	}

	refused := filepath.Join(dir, "refused.env")
	r := runMain(t, env, "", "channel", "create", "--name", "refused", "--save", refused)
	if _, err := os.Lstat(refused); r.code != ExitRefused || err == nil {
		t.Errorf("a refused create: exit %d, the file left behind (stat: %v); want exit 1 and no file", r.code, err)
	}

	saved := filepath.Join(dir, "home.env")
	r = runMain(t, env, "", "channel", "create", "--name", "home", "--save", saved)
	if r.code != 0 || r.stdout != "CH\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(saved)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v, want mode 0600", fi, err)
	}
	got, err := loadCredentials(credentialSources{Getenv: envOf(nil), File: saved})
	if want := (Credentials{Server: srv.URL, ChannelID: "CH", Password: "it's a $(secret)"}); err != nil || got != want {
		t.Errorf("saved file reads back %+v (%v), want %+v", got, err, want)
	}
}
