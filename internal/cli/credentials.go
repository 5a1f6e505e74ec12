package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
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
func loadCredentials(s credentialSources) (Credentials, error) {
	c := Credentials{
		Server:    s.Getenv(EnvURL),
		ChannelID: s.Getenv(EnvChannelID),
		Password:  s.Getenv(EnvPassword),
		Token:     s.Getenv(EnvToken),
	}
	path := s.File
	if path == "" {
		path = s.Getenv(EnvCredentials)
	}
	if path != "" {
		file, err := readCredentialsFile(path)
		if err != nil {
			return Credentials{}, err
		}
		for k, v := range file {
			switch k {
			case EnvURL:
				c.Server = v
			case EnvChannelID:
				c.ChannelID = v
			case EnvPassword:
				c.Password = v
			case EnvToken:
				c.Token = v
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
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '\'' && value[len(value)-1] == '\'' || value[0] == '"' && value[len(value)-1] == '"') {
			if value[0] == '"' {
				uq, err := strconv.Unquote(value)
				if err != nil {
					return nil, usagef("credentials file %s line %d: bad quoted value", path, n)
				}
				value = uq
			} else {
				value = value[1 : len(value)-1]
			}
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

// writeCredentialsFile creates path (mode 0600, never over an existing
// file) holding c in the form readCredentialsFile reads.
func writeCredentialsFile(path string, c Credentials) error {
	var b strings.Builder
	b.WriteString("# pushgo credentials: read with --credentials FILE or PUSHGO_CREDENTIALS=FILE\n")
	for _, kv := range [][2]string{{EnvURL, c.Server}, {EnvChannelID, c.ChannelID}, {EnvPassword, c.Password}, {EnvToken, c.Token}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], shellQuote(kv[1]))
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shellQuote single-quotes v unless it is plain, so that the file can be
// sourced by a POSIX shell and read back by parseCredentials.
func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@+,", r))
	}) < 0 {
		return v
	}
	if !strings.Contains(v, "'") {
		return "'" + v + "'"
	}
	return strconv.Quote(v)
}
