package sendertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// ServiceAccount writes a Google service account file for project whose
// token endpoint is a local server, so the FCM sender configured with a
// credentials file (PUSHGO_FCM_CREDENTIALS_FILE) runs against FakeFCM
// exactly as it would against Google. It returns the file and the number
// of tokens granted so far; the server stops when t ends.
func ServiceAccount(t testing.TB, project string) (file string, grants *atomic.Int64) {
	t.Helper()
	grants = &atomic.Int64{}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.PostForm.Get("assertion") == "" {
			http.Error(w, "bad grant", http.StatusBadRequest)
			return
		}
		grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"sa-access-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	return ServiceAccountAt(t, project, tokens.URL+"/token"), grants
}

// ServiceAccountAt writes a Google service account file for project whose
// token endpoint is tokenURI.
func ServiceAccountAt(t testing.TB, project, tokenURI string) (file string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "kid1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "pusher@" + project + ".iam.gserviceaccount.com", "client_id": "1",
		"token_uri": tokenURI,
	})
	file = filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// APNsKey returns a fresh PKCS#8 PEM P-256 key, as Apple's .p8 token-auth
// files are.
func APNsKey(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
