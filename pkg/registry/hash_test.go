package registry

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHashSecretRoundTrip(t *testing.T) {
	tests := []struct{ algo, prefix string }{
		{AlgoBcrypt, "$2a$10$"},
		{AlgoArgon2id, "$argon2id$v=19$m=19456,t=2,p=1$"},
	}
	for _, tt := range tests {
		t.Run(tt.algo, func(t *testing.T) {
			h, err := HashSecret("s3cret with spaces", tt.algo)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(h, tt.prefix), h)
			h2, err := HashSecret("s3cret with spaces", tt.algo)
			require.NoError(t, err)
			require.NotEqual(t, h, h2, "hashes must be salted")
			ph, err := parseHash(h)
			require.NoError(t, err)
			require.True(t, ph.verify("s3cret with spaces"))
			require.False(t, ph.verify("s3cret with space"))
		})
	}
}

func TestHashSecretErrors(t *testing.T) {
	_, err := HashSecret("", AlgoBcrypt)
	require.ErrorContains(t, err, "empty secret")
	_, err = HashSecret("x", "md5")
	require.ErrorContains(t, err, `unknown algorithm "md5"`)
	_, err = HashSecret(strings.Repeat("x", 73), AlgoBcrypt)
	require.ErrorContains(t, err, "bcrypt")
}

func TestParseHashErrors(t *testing.T) {
	const salt, key = "S7GMtnJ4azv8qfaz61u0vg", "fcOLg+RuyHMF4faea+V0IhiZpi/HlmX/OVhUNMNU1LM"
	tests := []struct{ hash, want string }{
		{"", "missing"},
		{"plain", "unknown hash format"},
		{"$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + key, "unknown hash format"},
		{"$2a$04$short", "bcrypt hash"},
		{"$2a$31$Psij8yunQ9Ap4O/Hif0cWewJenF.rugkPvyNEQVwPm9VrU.GpuDC2", "bcrypt cost 31 above 16"},
		{"$argon2id$v=19$m=1024,t=1,p=1$" + salt, "want $argon2id$v=19$m=..,t=..,p=..$salt$hash"},
		{"$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + key, `unsupported version "v=16"`},
		{"$argon2id$v=19$m=1024,t=1$" + salt + "$" + key, "want parameters m, t and p"},
		{"$argon2id$v=19$m=1024,t=1,p=1,x=2$" + salt + "$" + key, `unknown parameter "x"`},
		{"$argon2id$v=19$m=1024,m=2048,t=1,p=1$" + salt + "$" + key, `bad parameter "m=2048"`},
		{"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key, "parameter m"},
		{"$argon2id$v=19$m=1024,t=1,p=300$" + salt + "$" + key, "p=300 above 255"},
		{"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key, "m=4 out of range"},
		{"$argon2id$v=19$m=99999999,t=1,p=1$" + salt + "$" + key, "out of range"},
		{"$argon2id$v=19$m=1024,t=1000,p=1$" + salt + "$" + key, "t=1000 p=1 out of range"},
		{"$argon2id$v=19$m=1024,t=1,p=1$!!$" + key, "salt must be base64"},
		{"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$c2hvcnQ", "hash must be base64 of at least 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.hash, func(t *testing.T) {
			_, err := parseHash(tt.hash)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// Padded base64, as some tools print it, is accepted.
	h, err := parseHash("$argon2id$v=19$m=1024,t=1,p=1$" + salt + "==$" + key + "=")
	require.NoError(t, err)
	require.True(t, h.verify("probe-two-secret"))
}

func TestHashSecretCommand(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		stdin   string
		secret  string // what the printed hash must verify
		wantErr string
	}{
		{"stdin default argon2id", nil, "from-stdin\n", "from-stdin", ""},
		{"stdin crlf bcrypt", []string{"--algo", "bcrypt"}, "crlf\r\nignored\n", "crlf", ""},
		{"stdin without newline", []string{"-algo=argon2id"}, "no-newline", "no-newline", ""},
		{"flag wins over stdin", []string{"--secret", "flagged"}, "stdin\n", "flagged", ""},
		{"empty stdin", nil, "", "", "empty"},
		{"empty line", nil, "\nsecond\n", "", "empty"},
		{"unknown algo", []string{"--algo", "md5"}, "x\n", "", `unknown algorithm "md5"`},
		{"extra args", []string{"oops"}, "x\n", "", "unexpected arguments"},
		{"bad flag", []string{"--nope"}, "x\n", "", "flag provided but not defined"},
		{"too long", nil, strings.Repeat("x", maxSecretLen+1) + "\n", "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := HashSecretCommand("monitor hash-secret", tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, out.String())
				return
			}
			require.NoError(t, err)
			line := strings.TrimSuffix(out.String(), "\n")
			require.NotContains(t, line, "\n")
			h, err := parseHash(line)
			require.NoError(t, err)
			require.True(t, h.verify(tt.secret))
		})
	}
}
