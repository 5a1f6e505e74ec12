// Package cli is the pushgo command line client: the commands a script
// or a person runs against a gateway's HTTP API (channel create, send,
// event, thing, tail, status), in the same binary as the server.
//
// The contract of every command: output on stdout (the id written, or
// with --json the gateway's data object; JSON Lines for tail), messages
// and errors on stderr, and the exit codes of [ExitOK], [ExitRefused],
// [ExitUsage] and [ExitUnavailable]. Credentials come from the
// environment, a credentials file or standard input, never from argv.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Env is what a command reads and writes besides its arguments.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// interruptible ends a read of r when ctx ends (SIGINT, SIGTERM): a read
// of a terminal, or of a pipe its writer keeps open (--password-stdin,
// --body-file -), blocks for good, and the signal is the command's
// context's, not the process's. The read left blocked ends with the
// process, which exits at once (130).
type interruptible struct {
	ctx context.Context
	r   io.Reader
}

func (ir interruptible) Read(p []byte) (int, error) {
	if err := ir.ctx.Err(); err != nil {
		return 0, err
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, len(p))
	done := make(chan result, 1)
	go func() {
		n, err := ir.r.Read(buf)
		done <- result{n, err}
	}()
	select {
	case res := <-done:
		return copy(p, buf[:res.n]), res.err
	case <-ir.ctx.Done():
		return 0, ir.ctx.Err()
	}
}

// ServeFunc runs the gateway with the server's own flags and returns the
// process's exit code.
type ServeFunc func(ctx context.Context, args []string) int

// exitError carries an exit code chosen elsewhere (the server's).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// failure is a command that ran and failed on this side (a state file it
// cannot write, output it cannot print): exit code 1.
type failure struct{ err error }

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// globals are the flags every command takes.
type globals struct {
	server        string
	channel       string
	credentials   string
	passwordStdin bool
	json          bool
	timeout       time.Duration
	retries       int
	// inFlight says what an interruption leaves open, set by a command
	// before it sends a write ("" for a read, or before anything is sent).
	inFlight string
}

const rootLong = `pushgo is the PushGo gateway and its command line client.

With no command, or with only the server's flags (pushgo -target ingest), or as
"pushgo serve [flags]", it runs the gateway (see pushgo serve -h). Every other
command is a client of a running gateway's HTTP API.

Credentials are never taken from the command line (there is no --password
flag). In the order they win:
  --server URL, --channel ID         flags (neither is a secret)
  --password-stdin                   the channel password on standard input
  --credentials FILE                 a file of KEY=VALUE lines (the variables
                                     below); refused when its group or others
                                     can read it (chmod 600)
  the environment:
    PUSHGO_URL               the gateway (default ` + DefaultServer + `)
    PUSHGO_CHANNEL_ID        the channel
    PUSHGO_CHANNEL_PASSWORD  its password
    PUSHGO_TOKEN             the bearer token of a private gateway
    PUSHGO_CREDENTIALS       the credentials file, when --credentials is not given

Output: a write prints the id it wrote (channel, event, thing or message id);
--json prints the gateway's data object instead (one line), tail prints one
JSON object per operation, and an error is printed on stderr as one JSON
object {"error", "error_code", "status", "exit_code"}.

Writes carry an op_id (--op-id, or one generated per invocation), so a request
retried after a 503, a 429 or a lost connection is applied once.

Exit codes:
  0  done
  1  refused by the gateway (a 4xx: wrong password, unknown channel, invalid
     field, conflict, too many failed password checks; the error code and
     message are on stderr), a redirect (never followed: it would take the
     password along; set PUSHGO_URL to the URL it names), or the
     answer could not be written out (stdout, tail's --state file)
  2  usage error: bad flags or arguments, missing credentials, a credentials
     file others can read; nothing was sent
  3  gateway unavailable: network error, time-out, 5xx, or 429/503 still
     answered after the retries; retry later (with the same --op-id). A
     create without an op_id (channel create, token create|revoke) is not
     sent again after a time-out or a 503, which may follow a create the
     gateway stored: the message says how to check (pushgo token list)
  130 interrupted (SIGINT, SIGTERM) before the answer came (tail ends with 0)`

const exitFooter = `{{if not .HasParent}}{{else}}
Exit codes: 0 done, 1 refused by the gateway, 2 usage error, 3 gateway unavailable, 130 interrupted (see pushgo --help).
{{end}}`

// Main runs pushgo with args (os.Args[1:]) and returns the exit code. The
// server runs when serverArgs says so; anything else is a client command.
func Main(ctx context.Context, args []string, env Env, serve ServeFunc) int {
	if env.Stdin != nil {
		env.Stdin = interruptible{ctx: ctx, r: env.Stdin}
	}
	root, g := newRoot(env, serve)
	if sargs, ok := serverArgs(root, args); ok {
		return serve(ctx, sargs)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if ctx.Err() != nil {
		// Stopped by SIGINT or SIGTERM while waiting for the gateway.
		var ae *apiError
		if g.inFlight != "" && errors.As(err, &ae) && ae.Unsent {
			fmt.Fprintln(env.Stderr, "pushgo: interrupted; nothing was sent (every attempt was refused before the gateway took it)")
		} else if g.inFlight != "" {
			fmt.Fprintf(env.Stderr, "pushgo: interrupted; %s\n", g.inFlight)
		} else {
			fmt.Fprintln(env.Stderr, "pushgo: interrupted")
		}
		return ExitInterrupted
	}
	code := exitCodeOf(err)
	reportError(env.Stderr, g.json, err, code)
	if code == ExitUsage && cmd != nil && !errors.As(err, new(*usageError)) {
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitCodeOf maps an error to the documented exit code. Errors cobra
// returns (unknown command or flag, wrong number of arguments) are usage
// errors.
func exitCodeOf(err error) int {
	var ae *apiError
	var ue *usageError
	var fe *failure
	switch {
	case errors.As(err, &ae):
		return ae.exitCode()
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &fe):
		return ExitRefused
	default:
		return ExitUsage
	}
}

// reportError prints err on stderr: a line of text, or with --json one
// JSON object.
func reportError(w io.Writer, asJSON bool, err error, code int) {
	if !asJSON {
		fmt.Fprintf(w, "pushgo: %v\n", err)
		return
	}
	out := map[string]any{"error": err.Error(), "exit_code": code}
	var ae *apiError
	if errors.As(err, &ae) {
		out["status"] = ae.Status
		if ae.Code != "" {
			out["error_code"] = ae.Code
			out["error"] = ae.detail()
			if ae.Hint != "" {
				out["error"] = ae.detail() + "; " + ae.Hint
			}
		}
	}
	b, _ := json.Marshal(out)
	fmt.Fprintf(w, "%s\n", b)
}

// serverArgs says whether args run the server, and with which flags: no
// arguments; "serve" and the server's flags; or the server's flags alone
// (pushgo -target ingest, as before the client existed). A first argument
// that is a flag of the client (--server, --json, -h, ...) is the client's.
func serverArgs(root *cobra.Command, args []string) ([]string, bool) {
	if len(args) == 0 {
		return nil, true
	}
	if args[0] == "serve" {
		return args[1:], true
	}
	first := args[0]
	if !strings.HasPrefix(first, "-") || first == "-" || first == "--" {
		return nil, false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(first, "-"), "=")
	if name == "h" || name == "help" || root.PersistentFlags().Lookup(name) != nil ||
		len(name) == 1 && root.PersistentFlags().ShorthandLookup(name) != nil {
		return nil, false
	}
	return args, true
}

func newRoot(env Env, serve ServeFunc) (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:           "pushgo",
		Short:         "The PushGo gateway and its command line client",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		// No completion command: nothing here needs it, and it would be
		// one more name that is not the gateway's.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "the gateway's URL (PUSHGO_URL; default "+DefaultServer+")")
	pf.StringVar(&g.channel, "channel", "", "channel id (PUSHGO_CHANNEL_ID)")
	pf.StringVar(&g.credentials, "credentials", "", "credentials file of KEY=VALUE lines, mode 600 (PUSHGO_CREDENTIALS)")
	pf.BoolVar(&g.passwordStdin, "password-stdin", false, "read the channel password from standard input")
	pf.BoolVar(&g.json, "json", false, "print JSON: the gateway's data object (JSON Lines for tail)")
	pf.DurationVar(&g.timeout, "timeout", 15*time.Second, "bound on one request attempt")
	pf.IntVar(&g.retries, "retries", 3, "attempts after a 429, a 503 or a lost connection (each waits Retry-After, at most 30s)")
	root.SetUsageTemplate(root.UsageTemplate() + exitFooter)

	root.AddCommand(
		&cobra.Command{
			Use:   "serve [server flags]",
			Short: "Run the gateway (the default when no command is given)",
			Long: `Run the gateway: the HTTP API, the broker and every service of -target.
"pushgo", "pushgo -target ingest" and "pushgo serve -target ingest" are the
same. The server's flags and their environment variables are listed by
"pushgo serve -h" (and in the README's Configuration section).`,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return &exitError{code: serve(cmd.Context(), args)}
			},
		},
		channelCommand(env, g),
		sendCommand(env, g),
		eventCommand(env, g),
		thingCommand(env, g),
		tailCommand(env, g),
		statusCommand(env, g),
		tokenCommand(env, g),
	)
	return root, g
}

// session is what a command talks to and as whom.
type session struct {
	creds  Credentials
	client *client
	env    Env
	g      *globals
}

// write POSTs body to route: a write whose outcome an interruption or an
// answer that may follow an applied write (no answer in time, a 5xx)
// leaves open, for which hint says what the user should know (the op_id to
// repeat it with, or how to check).
func (s *session) write(ctx context.Context, route string, body any, kind retryKind, hint string) (json.RawMessage, error) {
	s.g.inFlight = hint
	data, err := s.client.do(ctx, http.MethodPost, route, nil, nil, body, kind)
	return data, mayHaveApplied(err, hint)
}

// need says which credentials a command requires.
type need int

const (
	needNothing need = iota
	needPassword
	needChannel
)

// open loads the credentials (requiring what the command needs) and
// builds the HTTP client.
func open(env Env, g *globals, needs ...need) (*session, error) {
	creds, err := loadCredentials(credentialSources{
		Getenv: env.Getenv, ServerFlag: g.server, ChannelFlag: g.channel,
		File: g.credentials, PasswordStdin: g.passwordStdin, Stdin: env.Stdin,
	})
	if err != nil {
		return nil, err
	}
	for _, n := range needs {
		switch {
		case n == needChannel && creds.ChannelID == "":
			return nil, usagef("no channel: set PUSHGO_CHANNEL_ID, pass --channel ID, or put PUSHGO_CHANNEL_ID in the --credentials file")
		case n == needPassword && creds.Password == "" && creds.Withheld != "":
			return nil, usagef("no channel password for this server: %s is not sent to another (set it for this one: PUSHGO_CHANNEL_PASSWORD beside PUSHGO_URL, --password-stdin, or the --credentials file)", creds.Withheld)
		case n == needPassword && creds.Password == "":
			return nil, usagef("no channel password: set PUSHGO_CHANNEL_PASSWORD, pipe it to --password-stdin, or put PUSHGO_CHANNEL_PASSWORD in the --credentials file (there is no --password flag: argv is visible to every user of the machine)")
		}
	}
	base, err := parseServer(creds.Server)
	if err != nil {
		return nil, err
	}
	if g.timeout <= 0 {
		return nil, usagef("--timeout %s: want a positive duration", g.timeout)
	}
	if g.retries < 0 {
		return nil, usagef("--retries %d: want 0 or more", g.retries)
	}
	c := &client{
		base: base, token: creds.Token, timeout: g.timeout, retries: g.retries, maxWait: 30 * time.Second,
		http:  &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: noRedirects},
		sleep: sleepCtx,
		warn: func(format string, args ...any) {
			fmt.Fprintf(env.Stderr, "pushgo: "+format+"\n", args...)
		},
	}
	if creds.Withheld != "" {
		fmt.Fprintf(env.Stderr, "pushgo: %s is not sent to %s\n", creds.Withheld, base.Redacted())
	}
	return &session{creds: creds, client: c, env: env, g: g}, nil
}

// printData prints a write's or a read's answer: data as the gateway sent
// it with --json, else human (a function of the decoded data).
func (s *session) printData(data json.RawMessage, human func(map[string]any) string) error {
	if s.g.json {
		_, err := fmt.Fprintf(s.env.Stdout, "%s\n", data)
		return wrapFailure(err)
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return &failure{err: fmt.Errorf("the gateway's data is not an object: %w", err)}
	}
	_, err := fmt.Fprintln(s.env.Stdout, human(m))
	return wrapFailure(err)
}

func wrapFailure(err error) error {
	if err == nil {
		return nil
	}
	return &failure{err: err}
}

// strOf is m[key] as text ("" when absent).
func strOf(m map[string]any, key string) string {
	switch v := m[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// exactArgs is cobra.ExactArgs with a usage error naming the argument.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %d argument(s): %s; got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// flagsOf is the command's own and inherited flags (for Changed).
func flagsOf(cmd *cobra.Command) *pflag.FlagSet { return cmd.Flags() }
