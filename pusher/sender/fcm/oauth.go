package fcm

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

// tokenLifetime stands for the expiry of an OAuth token that states none
// (a static source): it is asked for again after about this long.
const tokenLifetime = time.Hour

// ErrCredentialsFile is wrapped by every error of New about
// Options.CredentialsFile (unreadable, not JSON, a service account key
// without a usable private_key or client_email), so that the caller can
// name the setting the file came from. Such a file is refused at start:
// Google's library parses the key only when it first fetches a token, so
// a broken key used to start cleanly and leave every push retrying.
var ErrCredentialsFile = errors.New("fcm: credentials file")

// oauthSource is the AccessSource of a Sender given a credentials file or
// an oauth2.TokenSource, with the project of Options: a tokenservice.Cache
// in front of the token source. The SDK's own transport asked the source
// for a token under a lock and without a deadline, so a token endpoint that
// stalled during the hourly refresh held every FCM send, one after the
// other, far past its SendTimeout (and the pusher's workers with them);
// through the cache a request waits for a token no longer than its context
// allows, and concurrent requests share one fetch. A token FCM rejects is
// asked for again once (Invalidate), but Google's own source hands back
// the token it holds until about 10 s before its expiry: a rejected
// credentials-file token is retried with the policy's back-off, not
// replaced at once.
//
// explain, when not nil, rewrites a fetch error into what the operator
// should read (serviceAccount.explain); log receives the cache's warning
// for each failed fetch, the one line above debug that says why Android
// pushes are not going out (each push's own line is at debug: one a push
// would flood the log, where the cache's is at most one per
// tokenservice.DefaultRetryInterval).
func oauthSource(ts oauth2.TokenSource, project string, explain func(error) error, log *slog.Logger) (AccessSource, error) {
	fetch := func(context.Context) (tokenservice.Token, error) {
		// The source takes no context: the credentials file's is bounded
		// by its HTTP client's timeout (credentialsSource), and the cache
		// stops waiting for it at each caller's deadline.
		t, err := ts.Token()
		if err != nil {
			if explain != nil {
				err = explain(err)
			}
			return tokenservice.Token{}, err
		}
		expiry := t.Expiry
		if expiry.IsZero() {
			expiry = time.Now().Add(tokenLifetime)
		}
		return tokenservice.Token{Value: t.AccessToken, ProjectID: project, Expiry: expiry}, nil
	}
	// The oauth2 source replaces a token 10 s before its expiry: the cache
	// asks it again from 5 s before (at 30 s the source would hand back the
	// same token, and the cache would ask again at half of what is left).
	c, err := tokenservice.NewCache(fetch, tokenservice.CacheOptions{Name: "fcm oauth", RefreshBefore: 5 * time.Second, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return c, nil
}

// serviceAccount is what the sender reads of a credentials file: its
// project, and for a service account key who signs the token requests (no
// secret: the key itself is only checked, never kept here).
type serviceAccount struct {
	file      string
	projectID string
	email     string // client_email
	keyID     string // private_key_id
}

// readCredentials reads and checks a credentials file. A service account
// key ("type": "service_account", what Firebase's console hands out) must
// name its account and hold an RSA private key that parses as Google's
// library will parse it at the first fetch (PEM or DER, PKCS#8 or
// PKCS#1); other credential types are left to the library.
func readCredentials(file string) ([]byte, serviceAccount, error) {
	sa := serviceAccount{file: file}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, sa, fmt.Errorf("%w: %w", ErrCredentialsFile, err)
	}
	var f struct {
		Type         string `json:"type"`
		ProjectID    string `json:"project_id"`
		ClientEmail  string `json:"client_email"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &f, json.RejectUnknownMembers(false)); err != nil {
		return nil, sa, fmt.Errorf("%w %s: not a JSON credentials file: %w", ErrCredentialsFile, file, err)
	}
	sa.projectID, sa.email, sa.keyID = f.ProjectID, f.ClientEmail, f.PrivateKeyID
	if f.Type == "service_account" {
		if f.ClientEmail == "" {
			return nil, sa, fmt.Errorf("%w %s: service account key without client_email", ErrCredentialsFile, file)
		}
		if err := checkPrivateKey(f.PrivateKey); err != nil {
			return nil, sa, fmt.Errorf("%w %s: %w", ErrCredentialsFile, file, err)
		}
	}
	return b, sa, nil
}

// checkPrivateKey reports a private_key Google's library could not sign
// with (golang.org/x/oauth2/internal.ParseKey). Its errors say what is
// wrong without the parser's detail, which quotes the key's structure.
func checkPrivateKey(key string) error {
	if key == "" {
		return errors.New("service account key without private_key")
	}
	der := []byte(key)
	block, _ := pem.Decode(der)
	if block != nil {
		der = block.Bytes
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		var k1 *rsa.PrivateKey
		if k1, err = x509.ParsePKCS1PrivateKey(der); err != nil {
			if block == nil {
				// The usual cause: the key's line breaks lost or doubled
				// ("\\n") when the file was edited or templated.
				return errors.New("private_key is not a PEM block (-----BEGIN PRIVATE KEY----- and its lines); were its line breaks lost?")
			}
			return fmt.Errorf("private_key: its PEM block (%s) is not a PKCS#8 or PKCS#1 private key", block.Type)
		}
		parsed = k1
	}
	if _, ok := parsed.(*rsa.PrivateKey); !ok {
		return fmt.Errorf("private_key is a %T, not the RSA key of a Google service account", parsed)
	}
	return nil
}

// explain turns a failed token fetch of the account into the warning an
// operator can act on. A refusal by the token endpoint (a key revoked or
// deleted in the Cloud console, a disabled account: a well-formed key that
// only the endpoint can judge) names the file, the account and the key,
// and quotes Google's error code and description, never the response body
// whole. Any other failure (the endpoint unreachable) keeps its error.
// Neither holds a credential: the signed assertion is in the request, not
// in the error, and a refusal carries no token.
func (sa serviceAccount) explain(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("credentials file %s: fetching an access token: %w", sa.file, err)
	}
	return fmt.Errorf("credentials file %s: the token endpoint refused service account %s, key %s (revoked or deleted key, disabled account?): %s",
		sa.file, sa.email, sa.keyID, refusal(re))
}

// refusal is the status, error code and description of a token endpoint's
// refusal (RFC 6749 section 5.2).
func refusal(re *oauth2.RetrieveError) string {
	status := "no status"
	if re.Response != nil {
		status = re.Response.Status
	}
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		var b struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &b, json.RejectUnknownMembers(false)) == nil {
			code, desc = b.Error, b.Description
		}
	}
	code, desc = clip(code), clip(desc)
	switch {
	case code == "":
		return status
	case desc == "":
		return fmt.Sprintf("%s %s", status, code)
	}
	return fmt.Sprintf("%s %s %q", status, code, desc)
}

// clip bounds a text of a token endpoint's answer: a description is a
// sentence, and a proxy's HTML page is not quoted whole.
func clip(s string) string {
	const most = 200
	if len(s) <= most {
		return s
	}
	return strings.ToValidUTF8(s[:most], "") + "…"
}

// credentialsSource returns the token source of a credentials file's
// contents b (a service account key, or any credentials JSON Google's
// library reads), whose token requests are each bounded by fetchTimeout.
func credentialsSource(b []byte, file string, fetchTimeout time.Duration) (oauth2.TokenSource, error) {
	// The library fetches tokens with the HTTP client of this context, for
	// the source's whole life; without one it uses a client with no
	// timeout.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: fetchTimeout})
	creds, err := google.CredentialsFromJSON(ctx, b, Scope)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCredentialsFile, file, err)
	}
	return creds.TokenSource, nil
}
