package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// keygenKeys runs `probe keygen` and returns what it printed and the
// value of its public_key line.
func keygenKeys(t *testing.T) (out, pub string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.NoError(t, Main(context.Background(), []string{"keygen"}, nil, &stdout, &stderr))
	for line := range strings.Lines(stdout.String()) {
		if v, ok := strings.CutPrefix(line, "public_key:"); ok {
			pub = strings.TrimSpace(v)
		}
	}
	require.NotEmpty(t, pub, "keygen printed no public_key line: %q", stdout.String())
	return stdout.String(), pub
}

// TestKeygenSign: what keygen writes signs as is, and the signature
// verifies the way the probe verifies a remote configuration (the
// monitor serves the .sig file's trimmed content as its header).
func TestKeygenSign(t *testing.T) {
	keygenOut, pub := keygenKeys(t)
	var priv string
	for line := range strings.Lines(keygenOut) {
		if v, ok := strings.CutPrefix(line, "private_key:"); ok {
			priv = strings.TrimSpace(v)
		}
	}
	require.NotEmpty(t, priv)
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, key, wantErr string
	}{
		{name: "keygen output as written", key: keygenOut},
		{name: "private_key line alone", key: "private_key: " + priv + "\n"},
		{name: "bare base64", key: priv + "\n"},
		{name: "bare base64 without newline", key: priv},
		{name: "CRLF and quotes", key: "private_key: \"" + priv + "\"\r\npublic_key: " + pub + "\r\n"},
		{name: "public key only", key: "public_key: " + pub + "\n", wantErr: "no private_key: line"},
		{name: "empty", key: "\n", wantErr: "no private_key: line"},
		{name: "two bare lines", key: priv + "\n" + priv + "\n", wantErr: "no private_key: line"},
		{name: "two private_key lines", key: keygenOut + "private_key: " + base64.StdEncoding.EncodeToString(otherPriv) + "\n", wantErr: "private_key: given twice"},
		{name: "not base64", key: "private_key: not-base64!\n", wantErr: "want the base64 of a 64-byte ed25519 private key"},
		{name: "public key as bare key", key: pub + "\n", wantErr: "want the base64 of a 64-byte ed25519 private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile, cfgFile := filepath.Join(dir, "key.txt"), filepath.Join(dir, "0.yaml")
			require.NoError(t, os.WriteFile(keyFile, []byte(tc.key), 0o600))
			body := []byte("version: v2\ncollectors: []\n")
			require.NoError(t, os.WriteFile(cfgFile, body, 0o644))
			var stdout, stderr bytes.Buffer
			err := Main(context.Background(), []string{"sign", "-key-file=" + keyFile, cfgFile}, nil, &stdout, &stderr)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "read key "+keyFile)
				require.Empty(t, stdout.String())
				return
			}
			require.NoError(t, err)
			sig := strings.TrimSpace(stdout.String()) // as GET /probe/config sends the .sig file
			rc := RemoteConfig{PublicKey: pub}
			require.NoError(t, rc.verify(body, sig))
			require.ErrorIs(t, rc.verify(append(body, '#'), sig), errBadSignature)
		})
	}
}
