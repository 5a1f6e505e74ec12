package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pushgo/gateway/schemas/ids"
)

func channelCommand(env Env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "channel",
		Short: "Manage channels",
		Args:  noSubcommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var name, save string
	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a channel; prints its id",
		Long: `Create a channel (POST /channel/create) and print its id.

The password is the channel's new password, read as every password is: from
--password-stdin, the --credentials file or PUSHGO_CHANNEL_PASSWORD (8 to 128
bytes). --save FILE writes a new credentials file (mode 600) holding the
gateway's URL, the new channel's id and its password, for later commands'
--credentials (and for a POSIX shell to source: values are single-quoted). The
file is created before the request (a path that exists or cannot be created is
exit 2, nothing sent) and removed when the channel is not created.

Not sent again after a time-out or a 503 (the gateway may have stored the
channel before failing, and a retry would make a second one); sent again after
a refused connection or a 429 rate_limited, which apply nothing.`,
		Example: `  printf '%s' "$PASSWORD" | pushgo channel create --name home --password-stdin
  CH=$(PUSHGO_CHANNEL_PASSWORD=correct-horse pushgo channel create --name home)
  pushgo channel create --name home --password-stdin --save ~/.config/pushgo/home.env < pw.txt`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("channel create: --name is required")
			}
			s, err := open(env, g, needPassword)
			if err != nil {
				return err
			}
			// The --save file is created before the request, so a path
			// that cannot be created costs no channel, and removed unless
			// the credentials are all written to it: no partial file holds
			// the password.
			var saveFile *os.File
			if save != "" {
				if strings.ContainsAny(s.creds.Password+s.creds.Token, "\r\n\x00") {
					return usagef("--save: the password or token holds a line break or a NUL, which a credentials file cannot hold")
				}
				if saveFile, err = createCredentialsFile(save); err != nil {
					return err
				}
				defer func() {
					if saveFile != nil {
						saveFile.Close()
						os.Remove(save)
					}
				}()
			}
			// No op_id on this route: retried only when the gateway
			// certainly made no channel (a refused connection, a 429
			// rate_limited).
			const unknown = "the gateway may have created the channel without telling its id; " +
				"not sent again (a second try makes a second channel): run the command again to get one you know the id of"
			data, err := s.write(cmd.Context(), "/channel/create",
				map[string]string{"channel_name": name, "password": s.creds.Password}, retryUnsent, unknown)
			if err != nil {
				return err
			}
			var saveErr error
			if saveFile != nil {
				id := channelIDOf(data)
				c := Credentials{Server: s.client.base.String(), ChannelID: id, Password: s.creds.Password, Token: s.creds.Token}
				if err := writeCredentials(saveFile, c); err != nil {
					saveErr = &failure{err: fmt.Errorf("channel %s created, but --save failed (%s removed): %w", id, save, err)}
				} else {
					saveFile = nil // complete: kept
				}
			}
			if err := s.printData(data, func(m map[string]any) string { return strOf(m, "channel_id") }); err != nil {
				return err
			}
			return saveErr
		},
	}
	create.Flags().StringVar(&name, "name", "", "the channel's name (1 to 128 characters)")
	create.Flags().StringVar(&save, "save", "", "write a credentials file (mode 600) for the new channel")
	cmd.AddCommand(create)
	return cmd
}

// noSubcommand refuses an argument of a command that only groups others
// (pushgo event bogus).
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

func channelIDOf(data []byte) string {
	var m struct {
		ChannelID string `json:"channel_id"`
	}
	_ = json.Unmarshal(data, &m)
	return m.ChannelID
}

// writeCommand is a write route's command: its flags, the body it sends
// and the id it prints.
type writeCommand struct {
	use, short, long, example string
	route                     string
	// idArg is the positional id the route takes ("" for creates): the
	// member it fills (event_id, thing_id).
	idArg     string
	fields    []field
	withAttrs bool
	// required are flags that must be given (the API requires them and
	// the CLI has no sound default for them).
	required []string
	// defaultNow are the time members set to now when not given.
	defaultNow []string
	// printed is the data member printed without --json.
	printed string
	// extra adds command-specific flags and body members.
	extra func(fs *pflag.FlagSet) func(body map[string]any, env Env) error
}

func (w writeCommand) build(env Env, g *globals) *cobra.Command {
	var opID string
	cmd := &cobra.Command{Use: w.use, Short: w.short, Long: w.long, Example: w.example}
	if w.idArg != "" {
		cmd.Args = exactArgs(strings.ToUpper(w.idArg))
	} else {
		cmd.Args = exactArgs()
	}
	fs := cmd.Flags()
	bf := newBodyFlags(fs, w.withAttrs, w.fields...)
	fs.StringVar(&opID, "op-id", "", "idempotency key (1 to 128 of [A-Za-z0-9_:-]); default: one generated per invocation, used by its retries. To repeat an invocation, repeat its whole body, times included")
	var extra func(map[string]any, Env) error
	if w.extra != nil {
		extra = w.extra(fs)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		for _, r := range w.required {
			if !fs.Changed(r) {
				return usagef("%s: --%s is required", cmd.CommandPath(), r)
			}
		}
		explicitOpID := opID != ""
		if opID == "" {
			opID = ids.NewSenderOpID()
		} else if !ids.ValidOpID(opID) {
			return usagef("--op-id %q: want 1 to 128 characters of [A-Za-z0-9_:-]", opID)
		}
		body, err := bf.build(fs, w.defaultNow...)
		if err != nil {
			return err
		}
		if extra != nil {
			if err := extra(body, env); err != nil {
				return err
			}
		}
		s, err := open(env, g, needChannel, needPassword)
		if err != nil {
			return err
		}
		body["channel_id"] = s.creds.ChannelID
		body["password"] = s.creds.Password
		body["op_id"] = opID
		if w.idArg != "" {
			body[w.idArg] = args[0]
		}
		// The op_id is what makes a repeat safe, and a generated one is
		// known only here: it is named wherever the write may have been
		// applied unseen.
		repeat := fmt.Sprintf("the write may have been applied; repeat it with --op-id %s (and the same body and times) to apply it once", opID)
		data, err := s.write(cmd.Context(), w.route, body, retrySafe, repeat)
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "op_id_conflict" && explicitOpID {
			if defaulted := defaultedTimes(fs, w.fields, w.defaultNow); len(defaulted) > 0 {
				ae.Message += fmt.Sprintf("; this invocation set %s to now, so it differs from the first one's: repeat the first call's value to retry it", strings.Join(defaulted, ", "))
			}
		}
		if err != nil {
			return err
		}
		return s.printData(data, func(m map[string]any) string { return strOf(m, w.printed) })
	}
	return cmd
}

const writeLong = `

The channel and its password come from the environment, --credentials or
--password-stdin (see pushgo --help). Prints the %s; --json prints the
gateway's data ({channel_id, op_id, %s, accepted}). Times take now, Unix
seconds or milliseconds, or RFC 3339. --attr k=v sets a string member of attrs,
--attr k:=JSON any JSON value (k:=null removes the member).`

// defaultedTimes are the time flags of members a command set to now
// because they were not given.
func defaultedTimes(fs *pflag.FlagSet, fields []field, members []string) []string {
	var out []string
	for _, f := range fields {
		if f.kind == kindTime && slices.Contains(members, f.member) && !fs.Changed(f.flag) {
			out = append(out, "--"+f.flag)
		}
	}
	return out
}

func sendCommand(env Env, g *globals) *cobra.Command {
	return writeCommand{
		use:   "send --title TITLE [flags]",
		short: "Send a message (POST /message); prints the message id",
		long:  "Send a one-shot Message to the channel's devices (POST /message)." + fmt.Sprintf(writeLong, "message id", "message_id"),
		example: `  pushgo send --title "Disk 2 failed" --severity high --body "NAS bay 2" --url https://nas.local
  echo "backup done in 4m" | pushgo send --title Backup --body-file -
  pushgo send --title "Disk 2 failed" --thing "$THING" --occurred-at now --op-id disk2-failed-20260422`,
		route:   "/message",
		fields:  []field{fTitle, fBody, fSeverity, fURL, fThing, fOccurredAt, fTTL, fTag, fImage, fMeta, fCiphertext},
		printed: "message_id", required: []string{"title"},
		extra: func(fs *pflag.FlagSet) func(map[string]any, Env) error {
			bodyFile := fs.String("body-file", "", "read the body from FILE (- is standard input)")
			return func(body map[string]any, env Env) error {
				if *bodyFile == "" {
					return nil
				}
				if _, ok := body["body"]; ok {
					return usagef("--body and --body-file exclude each other")
				}
				var b []byte
				var err error
				if *bodyFile == "-" {
					if g.passwordStdin {
						return usagef("--body-file - and --password-stdin both read standard input")
					}
					b, err = io.ReadAll(io.LimitReader(env.Stdin, 1<<20))
				} else {
					b, err = os.ReadFile(*bodyFile)
				}
				if err != nil {
					return usagef("--body-file: %v", err)
				}
				body["body"] = strings.TrimSuffix(string(b), "\n")
				return nil
			}
		},
	}.build(env, g)
}

func eventCommand(env Env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "event",
		Short: "Create, update and close Events (processes with a lifecycle)",
		Args:  noSubcommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	common := []field{fStatus, fMessage, fSeverity, fTitle, fDescription, fEventTime, fTag, fImage, fMeta, fCiphertext}
	required := []string{"status", "message", "severity"}
	cmd.AddCommand(
		writeCommand{
			use:   "create --title TITLE --status S --message M --severity SEV [flags]",
			short: "Create an event (POST /event/create); prints its event id",
			long:  "Create an Event (POST /event/create)." + fmt.Sprintf(writeLong, "event id", "event_id"),
			example: `  EV=$(pushgo event create --title "Production deployment" --status running \
        --message "Deployment started" --severity normal --attr service=api --attr progress:=0)`,
			route: "/event/create", fields: append([]field{fThing, fStartedAt}, common...), withAttrs: true,
			required: append([]string{"title"}, required...), defaultNow: []string{"event_time"}, printed: "event_id",
		}.build(env, g),
		writeCommand{
			use:     "update EVENT_ID --status S --message M --severity SEV [flags]",
			short:   "Update an event (POST /event/update)",
			long:    "Update an open Event (POST /event/update)." + fmt.Sprintf(writeLong, "event id", "event_id"),
			example: `  pushgo event update "$EV" --status publishing --message "Image pushed" --severity normal --attr progress:=0.75`,
			route:   "/event/update", idArg: "event_id", fields: common, withAttrs: true,
			required: required, defaultNow: []string{"event_time"}, printed: "event_id",
		}.build(env, g),
		writeCommand{
			use:     "close EVENT_ID --status S --message M --severity SEV [flags]",
			short:   "Close an event (POST /event/close)",
			long:    "Close an Event (POST /event/close); ended_at defaults to the event time." + fmt.Sprintf(writeLong, "event id", "event_id"),
			example: `  pushgo event close "$EV" --status success --message "Deployment completed" --severity normal`,
			route:   "/event/close", idArg: "event_id", fields: append([]field{fEndedAt}, common...), withAttrs: true,
			required: required, defaultNow: []string{"event_time"}, printed: "event_id",
		}.build(env, g),
	)
	return cmd
}

func thingCommand(env Env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "thing",
		Short: "Create, update, archive and delete Things (long-lived objects with state)",
		Args:  noSubcommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	common := []field{fTitle, fDescription, fObservedAt, fTag, fImage, fPrimaryImg, fExternalID, fLocType, fLocValue, fMeta, fCiphertext}
	cmd.AddCommand(
		writeCommand{
			use:   "create [flags]",
			short: "Create a thing (POST /thing/create); prints its thing id",
			long:  "Create a Thing (POST /thing/create)." + fmt.Sprintf(writeLong, "thing id", "thing_id"),
			example: `  NAS=$(pushgo thing create --title "Home NAS" --location-type physical --location-value home/living-room \
        --attr online:=true --attr disk_used:=0.72 --tag nas)`,
			route: "/thing/create", fields: append([]field{fCreatedAt}, common...), withAttrs: true,
			defaultNow: []string{"observed_at"}, printed: "thing_id",
		}.build(env, g),
		writeCommand{
			use:     "update THING_ID [flags]",
			short:   "Update a thing (POST /thing/update)",
			long:    "Update a Thing (POST /thing/update): attrs are merged (JSON Merge Patch); an archived Thing becomes active again." + fmt.Sprintf(writeLong, "thing id", "thing_id"),
			example: `  pushgo thing update "$NAS" --attr temperature:=45.1 --attrs-json '{"disks":{"2":"failed"}}'`,
			route:   "/thing/update", idArg: "thing_id", fields: common, withAttrs: true,
			defaultNow: []string{"observed_at"}, printed: "thing_id",
		}.build(env, g),
		writeCommand{
			use:     "archive THING_ID [flags]",
			short:   "Archive a thing (POST /thing/archive)",
			long:    "Archive a Thing (POST /thing/archive): its history is kept; an update makes it active again." + fmt.Sprintf(writeLong, "thing id", "thing_id"),
			example: `  pushgo thing archive "$NAS"`,
			route:   "/thing/archive", idArg: "thing_id", fields: common, withAttrs: true,
			defaultNow: []string{"observed_at"}, printed: "thing_id",
		}.build(env, g),
		writeCommand{
			use:     "delete THING_ID [flags]",
			short:   "Delete a thing (POST /thing/delete)",
			long:    "Delete a Thing (POST /thing/delete): no operation is accepted on it afterwards (409 thing_deleted)." + fmt.Sprintf(writeLong, "thing id", "thing_id"),
			example: `  pushgo thing delete "$NAS"`,
			route:   "/thing/delete", idArg: "thing_id", fields: append([]field{fDeletedAt}, common...), withAttrs: true,
			defaultNow: []string{"observed_at"}, printed: "thing_id",
		}.build(env, g),
	)
	return cmd
}

func statusCommand(env Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status OP_ID",
		Short: "Show an operation's delivery status (GET /send_status)",
		Long: `Show the delivery status of the operation an op_id names (GET /send_status/{op_id}):
accepted, processing, sent, partially_failed or failed, and the deliveries
sent, failed and pending. No password is needed. When a channel is configured
(--channel, PUSHGO_CHANNEL_ID or the credentials file) the op_id is looked up
in that channel only (op_ids are unique per channel); otherwise in every
channel (an op_id two channels used is refused: 409 op_id_ambiguous).`,
		Example: `  OP=deploy-42; pushgo event create --op-id "$OP" ... && pushgo status "$OP"
  pushgo status --json "$OP"`,
		Args: exactArgs("OP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !ids.ValidOpID(args[0]) {
				return usagef("op_id %q: want 1 to 128 characters of [A-Za-z0-9_:-]", args[0])
			}
			s, err := open(env, g)
			if err != nil {
				return err
			}
			var q url.Values
			if s.creds.ChannelID != "" {
				q = url.Values{"channel_id": {s.creds.ChannelID}}
			}
			data, err := s.client.do(cmd.Context(), http.MethodGet, "/send_status/"+url.PathEscape(args[0]), q, nil, nil, retrySafe)
			if err != nil {
				return err
			}
			return s.printData(data, func(m map[string]any) string {
				var b strings.Builder
				fmt.Fprintf(&b, "%s\t%s", strOf(m, "op_id"), strOf(m, "status"))
				if d, ok := m["deliveries"].(map[string]any); ok {
					fmt.Fprintf(&b, "\tsent=%s failed=%s pending=%s", strOf(d, "sent"), strOf(d, "failed"), strOf(d, "pending"))
				}
				fmt.Fprintf(&b, "\t%s %s", strOf(m, "entity_type"), strOf(m, "entity_id"))
				return b.String()
			})
		},
	}
}
