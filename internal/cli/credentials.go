package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
)

// Environment variables the CLI reads. The names are the API's: a channel
// id and its password, and the gateway-wide token of a private gateway
// (the server's own PUSHGO_TOKEN).
const (
	EnvURL         = "PUSHGO_URL"
	EnvChannelID   = "PUSHGO_CHANNEL_ID"
	EnvPassword    = "PUSHGO_CHANNEL_PASSWORD"
	EnvToken       = "PUSHGO_TOKEN"
	EnvCredentials = "PUSHGO_CREDENTIALS"
)

// DefaultServer is the gateway a command talks to without --server or
// PUSHGO_URL: the one `pushgo` serves by default.
const DefaultServer = "http://127.0.0.1:8080"

// credentialKeys are the keys a credentials file may set.
var credentialKeys = []string{EnvURL, EnvChannelID, EnvPassword, EnvToken}

// Credentials are where a command sends and as whom.
type Credentials struct {
	Server    string
	ChannelID string
	Password  string
	Token     string
	// Withheld names the secrets not sent to Server, given for another
	// ("" when none).
	Withheld string
}

// redactedURL is u with any password in it masked.
func redactedURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "another server"
}

// sameServer says whether two gateway URLs name one gateway (a trailing
// slash and the scheme's and host's case aside).
func sameServer(a, b string) bool {
	norm := func(u string) string {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if scheme, rest, ok := strings.Cut(u, "://"); ok {
			host, path, _ := strings.Cut(rest, "/")
			u = strings.ToLower(scheme) + "://" + strings.ToLower(host) + "/" + path
		}
		return strings.TrimRight(u, "/")
	}
	return norm(a) == norm(b)
}

// credentialSources are the places credentials come from, in the order
// they win: flags (--server, --channel), the password on stdin
// (--password-stdin), the credentials file (--credentials or
// PUSHGO_CREDENTIALS), then the environment. A password is never taken
// from the command line: there is no flag for it.
type credentialSources struct {
	Getenv        func(string) string
	ServerFlag    string
	ChannelFlag   string
	File          string // --credentials; "" falls back to PUSHGO_CREDENTIALS
	PasswordStdin bool
	Stdin         io.Reader
}

// loadCredentials merges the sources. Errors are usage errors (exit 2).
//
// A secret (the channel password, the API token) goes only to the server
// of the source that gave it, when that source names one: with PUSHGO_URL
// and PUSHGO_TOKEN exported for gateway A, a credentials file naming
// gateway B (or --server B) must not send A's token to B. A source that
// names no server (PUSHGO_URL unset, a file without it) binds its secrets
// to none.
func loadCredentials(s credentialSources) (Credentials, error) {
	c := Credentials{
		Server:    s.Getenv(EnvURL),
		ChannelID: s.Getenv(EnvChannelID),
		Password:  s.Getenv(EnvPassword),
		Token:     s.Getenv(EnvToken),
	}
	passwordFor, tokenFor := c.Server, c.Server // "": bound to no server
	path := s.File
	if path == "" {
		path = s.Getenv(EnvCredentials)
	}
	if path != "" {
		file, err := readCredentialsFile(path)
		if err != nil {
			return Credentials{}, err
		}
		fileServer := file[EnvURL]
		for k, v := range file {
			switch k {
			case EnvURL:
				c.Server = v
			case EnvChannelID:
				c.ChannelID = v
			case EnvPassword:
				c.Password, passwordFor = v, fileServer
			case EnvToken:
				c.Token, tokenFor = v, fileServer
			}
		}
	}
	if s.PasswordStdin {
		pw, err := readPasswordStdin(s.Stdin)
		if err != nil {
			return Credentials{}, err
		}
		c.Password = pw
	}
	if s.ServerFlag != "" {
		c.Server = s.ServerFlag
	}
	if s.ChannelFlag != "" {
		c.ChannelID = s.ChannelFlag
	}
	if c.Server == "" {
		c.Server = DefaultServer
	}
	if c.Password != "" && !s.PasswordStdin && passwordFor != "" && !sameServer(passwordFor, c.Server) {
		c.Password = ""
		c.Withheld = "the channel password given for " + redactedURL(passwordFor)
	}
	if c.Token != "" && tokenFor != "" && !sameServer(tokenFor, c.Server) {
		c.Token = ""
		c.Withheld = strings.TrimPrefix(c.Withheld+" and the API token given for "+redactedURL(tokenFor), " and ")
	}
	c.ChannelID = strings.TrimSpace(c.ChannelID)
	return c, nil
}

// readPasswordStdin reads a password from stdin as docker login
// --password-stdin does: the whole input, without its line end. More than
// one line is refused (a password piped with something else by mistake).
func readPasswordStdin(r io.Reader) (string, error) {
	if r == nil {
		return "", usagef("--password-stdin: no standard input")
	}
	b, err := io.ReadAll(io.LimitReader(r, 4097))
	if err != nil {
		return "", usagef("--password-stdin: read standard input: %v", err)
	}
	if len(b) > 4096 {
		return "", usagef("--password-stdin: more than 4096 bytes on standard input")
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(s, "\r\n") {
		return "", usagef("--password-stdin: standard input holds more than one line")
	}
	if s == "" {
		return "", usagef("--password-stdin: standard input is empty")
	}
	return s, nil
}

// readCredentialsFile reads a file of KEY=VALUE lines (the names of the
// environment variables; blank lines and # comments skipped; an optional
// "export " prefix and single or double quotes around the value, so the
// file can also be sourced by a shell). Like ssh with a private key, it
// refuses a file that its group or others may read or write: the file
// holds a password.
func readCredentialsFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("credentials file %s does not exist", path)
		}
		return nil, usagef("credentials file: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, usagef("credentials file: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, usagef("credentials file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, usagef("credentials file %s is accessible by others (mode %04o): it holds a password; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, usagef("credentials file %s: %v", path, err)
	}
	return parseCredentials(path, b)
}

// parseCredentials parses the KEY=VALUE form of readCredentialsFile.
func parseCredentials(path string, b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return nil, usagef("credentials file %s line %d: want KEY=VALUE", path, n)
		}
		known := false
		for _, k := range credentialKeys {
			known = known || k == key
		}
		if !known {
			return nil, usagef("credentials file %s line %d: unknown key %q (known: %s)", path, n, key, strings.Join(credentialKeys, ", "))
		}
		value, err := unquoteShell(strings.TrimSpace(value))
		if err != nil {
			return nil, usagef("credentials file %s line %d: %s: %v", path, n, key, err)
		}
		if _, dup := out[key]; dup {
			return nil, usagef("credentials file %s line %d: %s set twice", path, n, key)
		}
		out[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("credentials file %s: %v", path, err)
	}
	return out, nil
}

// unquoteShell reads v as a POSIX shell reads the value of an assignment
// (KEY=v), so that the CLI and a shell sourcing the file see the same
// value: single-quoted parts literal; double-quoted parts with a backslash
// escaping only $ ` " and \; outside quotes a backslash escapes the next
// character and unquoted blanks end the value (then only a # comment may
// follow). What a shell would expand or run ($, `, ~, ;, &, |, <, >, (, )
// unquoted; $ and ` in double quotes) is refused with the fix: put the
// value in single quotes.
func unquoteShell(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(v[i+1 : i+1+j])
			i += j + 2
		case c == '"':
			j, err := unquoteDouble(&b, v[i+1:])
			if err != nil {
				return "", err
			}
			i += j + 2
		case c == '\\':
			if i+1 >= len(v) {
				return "", errors.New("a backslash ends the value")
			}
			b.WriteByte(v[i+1])
			i += 2
		case c == ' ' || c == '\t':
			if rest := strings.TrimLeft(v[i:], " \t"); rest != "" && rest[0] != '#' {
				return "", errors.New("a blank outside quotes (a shell would run the rest as a command): put the value in single quotes")
			}
			return b.String(), nil
		case strings.IndexByte("$`~;&|<>()", c) >= 0:
			return "", fmt.Errorf("%q outside quotes means something to a shell: put the value in single quotes", c)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// unquoteDouble appends the inside of a double-quoted part (v starts after
// the opening quote) to b and returns the index of the closing quote.
func unquoteDouble(b *strings.Builder, v string) (int, error) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			return i, nil
		case c == '\\' && i+1 < len(v) && strings.IndexByte("$`\"\\", v[i+1]) >= 0:
			b.WriteByte(v[i+1])
			i++
		case c == '$' || c == '`':
			return 0, fmt.Errorf("%q inside double quotes is expanded by a shell: put the value in single quotes", c)
		default:
			b.WriteByte(c)
		}
	}
	return 0, errors.New("unterminated double quote")
}

// createCredentialsFile creates path for a credentials file: mode 0600,
// never over an existing file (nor through a symbolic link). --save calls
// it before sending anything, so a path it cannot create costs nothing.
func createCredentialsFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, usagef("--save %s: the file exists (it is never overwritten)", path)
	}
	if err != nil {
		return nil, usagef("--save: %v", err)
	}
	return f, nil
}

// writeCredentials writes c to f, created by createCredentialsFile, in the
// form readCredentialsFile reads (and a POSIX shell sources), makes it
// durable and closes f. The caller removes the file when this fails.
func writeCredentials(f *os.File, c Credentials) error {
	var b strings.Builder
	b.WriteString("# pushgo credentials: read with --credentials FILE or PUSHGO_CREDENTIALS=FILE\n")
	for _, kv := range [][2]string{{EnvURL, c.Server}, {EnvChannelID, c.ChannelID}, {EnvPassword, c.Password}, {EnvToken, c.Token}} {
		if strings.ContainsAny(kv[1], "\r\n\x00") {
			f.Close()
			return fmt.Errorf("%s holds a line break or a NUL: a credentials file cannot hold it", kv[0])
		}
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], shellQuote(kv[1]))
		}
	}
	_, werr := f.WriteString(b.String())
	if werr == nil {
		werr = f.Sync()
	}
	return errors.Join(werr, f.Close())
}

// writeCredentialsFile creates path (mode 0600, never over an existing
// file) holding c; on failure nothing is left at path.
func writeCredentialsFile(path string, c Credentials) error {
	f, err := createCredentialsFile(path)
	if err != nil {
		return err
	}
	if err := writeCredentials(f, c); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// shellQuote leaves v as it is when it is plain, else single-quotes it for
// a POSIX shell (a quote inside ends the quoting, is escaped with a
// backslash, and the quoting starts again), so that the file can be sourced
// and read back by parseCredentials to the same bytes.
func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@+,", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
