package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// tokenCommand is "pushgo token": the channel's integration tokens
// (POST /channel/token/list, create and revoke), authorized by the channel
// password like every channel command.
func tokenCommand(env Env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "List, create and revoke the channel's integration tokens",
		Long: `List, create and revoke the channel's integration tokens: the credentials
monitoring tools (Dynatrace, Alertmanager, PagerDuty, CloudEvents, the event
bus) send with their reports. The channel and its password come from the
environment, --credentials or --password-stdin (see pushgo --help).`,
		Args: noSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the channel's tokens (POST /channel/token/list)",
		Long: `List the channel's integration tokens (POST /channel/token/list), oldest
first: one line each, "TOKEN_ID<TAB>NAME<TAB>SCOPES<TAB>CREATED" (scopes
comma-separated, the creation time in RFC 3339, UTC). A token's secret is shown
only by "pushgo token create", never here. --json prints the gateway's data
({channel_id, tokens: [{token_id, name, scopes, created_at}], truncated}).`,
		Example: `  pushgo token list
  pushgo token list --json | jq -r '.tokens[] | select(.name == "grafana") | .token_id'`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open(env, g, needChannel, needPassword)
			if err != nil {
				return err
			}
			data, err := s.client.do(cmd.Context(), http.MethodPost, "/channel/token/list", nil, nil,
				map[string]string{"channel_id": s.creds.ChannelID, "password": s.creds.Password}, retrySafe)
			if err != nil {
				return err
			}
			if g.json {
				return s.printData(data, nil)
			}
			var l struct {
				Tokens []struct {
					TokenID   string   `json:"token_id"`
					Name      string   `json:"name"`
					Scopes    []string `json:"scopes"`
					CreatedAt int64    `json:"created_at"`
				} `json:"tokens"`
				Truncated bool `json:"truncated"`
			}
			if err := json.Unmarshal(data, &l); err != nil {
				return &failure{err: fmt.Errorf("the gateway's token list: %w", err)}
			}
			var b strings.Builder
			for _, t := range l.Tokens {
				fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", t.TokenID, t.Name, strings.Join(t.Scopes, ","),
					time.UnixMilli(t.CreatedAt).UTC().Format(time.RFC3339))
			}
			if _, err := fmt.Fprint(env.Stdout, b.String()); err != nil {
				return wrapFailure(err)
			}
			if l.Truncated {
				fmt.Fprintf(env.Stderr, "pushgo: only the oldest %d tokens are listed\n", len(l.Tokens))
			}
			return nil
		},
	}
	var name string
	var scopes []string
	create := &cobra.Command{
		Use:   "create --name NAME [--scope SCOPE]...",
		Short: "Create a token (POST /channel/token/create); prints it, once",
		Long: `Create an integration token (POST /channel/token/create) and print it: this is
the only time its secret is shown (the gateway keeps a hash). --scope is
events.ingest (send reports; the default) or events.read (read events, e.g.
Dynatrace's GET), repeatable. At most PUSHGO_LIMIT_TOKENS_PER_CHANNEL tokens
per channel (409 token_limit_reached). --json prints the gateway's data
({channel_id, token_id, token, name, scopes, created_at}).

Not sent again after a time-out or a 503 (the gateway may have stored the
token before failing, and a retry would make a second one): the message says
to check with "pushgo token list".`,
		Example: `  TOKEN=$(pushgo token create --name alertmanager)
  pushgo token create --name dynatrace --scope events.ingest --scope events.read --json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("token create: --name is required")
			}
			s, err := open(env, g, needChannel, needPassword)
			if err != nil {
				return err
			}
			unknown := fmt.Sprintf("the gateway may have created the token (its secret is lost if so); "+
				"not sent again: check with pushgo token list (named %q) and revoke it with pushgo token revoke TOKEN_ID", name)
			data, err := s.write(cmd.Context(), "/channel/token/create",
				map[string]any{"channel_id": s.creds.ChannelID, "password": s.creds.Password, "name": name, "scopes": scopes}, retryUnsent, unknown)
			if err != nil {
				return err
			}
			return s.printData(data, func(m map[string]any) string { return strOf(m, "token") })
		},
	}
	create.Flags().StringVar(&name, "name", "", "the token's name, to tell it apart (1 to 128 characters)")
	create.Flags().StringArrayVar(&scopes, "scope", []string{"events.ingest"}, "a scope: events.ingest or events.read (repeatable)")
	revoke := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke a token (POST /channel/token/revoke)",
		Long: `Revoke an integration token by its id (POST /channel/token/revoke; the 24
characters after "pgo1.", as "pushgo token list" shows them): it stops working
at once. Prints the token id; --json prints the gateway's data ({channel_id,
token_id, revoked}). An unknown or already revoked id is refused (exit 1,
token_not_found).`,
		Example: `  pushgo token revoke q3vbx7m2k4n5p6r7s2t3u4v5`,
		Args:    exactArgs("TOKEN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open(env, g, needChannel, needPassword)
			if err != nil {
				return err
			}
			// Retried only when unsent: after a lost answer the revoke may
			// have been applied, and a retry would answer token_not_found.
			const unknown = "the gateway may have revoked the token; not sent again: check with pushgo token list"
			data, err := s.write(cmd.Context(), "/channel/token/revoke",
				map[string]string{"channel_id": s.creds.ChannelID, "password": s.creds.Password, "token_id": strings.TrimSpace(args[0])}, retryUnsent, unknown)
			if err != nil {
				return err
			}
			return s.printData(data, func(m map[string]any) string { return strOf(m, "token_id") })
		},
	}
	cmd.AddCommand(list, create, revoke)
	return cmd
}
