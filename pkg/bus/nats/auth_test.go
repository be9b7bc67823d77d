package nats_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// nkeyUser returns a user's public key and the file of its seed.
func nkeyUser(t *testing.T, dir, name string) (public, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	public, err = kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile = filepath.Join(dir, name+".nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))
	return public, seedFile
}

// TestExternalNATSServerAuth runs Debian's nats-server with each way of
// logging in the client has besides user and password (external_test.go):
// an NKEY over mutual TLS, and a token. The right credentials publish
// into the stream; wrong ones, or no client certificate, leave the
// publisher not ready (Ping fails), never silently connected.
func TestExternalNATSServerAuth(t *testing.T) {
	dir := t.TempDir()
	cert, key := peertest.SelfSignedCert(t, dir)
	user, seed := nkeyUser(t, dir, "user")
	_, otherSeed := nkeyUser(t, dir, "other")

	for _, tc := range []struct {
		name   string
		server string // nats-server configuration besides listen and JetStream
		tls    bool
		ok     func(*nats.Config)
		bad    map[string]func(*nats.Config)
	}{
		{
			name: "nkey over mutual TLS",
			server: fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }\n"+
				"authorization { users = [ { nkey: %q } ] }\n", cert, key, cert, user),
			tls: true,
			ok: func(c *nats.Config) {
				c.NKeyFile = seed
				c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = cert, cert, key
			},
			bad: map[string]func(*nats.Config){
				"another nkey": func(c *nats.Config) {
					c.NKeyFile = otherSeed
					c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = cert, cert, key
				},
				"no client certificate": func(c *nats.Config) {
					c.NKeyFile = seed
					c.TLS.CAFile = cert
				},
			},
		},
		{
			name:   "token",
			server: "authorization { token: \"s3cr3t-token\" }\n",
			ok:     func(c *nats.Config) { c.Token = "s3cr3t-token" },
			bad: map[string]func(*nats.Config){
				"wrong token": func(c *nats.Config) { c.Token = "guess" },
				"no token":    func(*nats.Config) {},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, store := peertest.FreeAddr(t), t.TempDir()
			conf := filepath.Join(t.TempDir(), "nats.conf")
			require.NoError(t, os.WriteFile(conf, []byte(tc.server), 0o600))
			peertest.NATSServer(t, addr, store, "-c", conf)
			scheme := "nats://"
			if tc.tls {
				scheme = "tls://"
			}
			url := scheme + addr

			cfg := natstest.Config(url)
			tc.ok(&cfg)
			pub := publisher(t, cfg)
			require.Eventually(t, func() bool { return pub.Ping(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond)
			require.NoError(t, pub.Publish("auth", message.NewMessage("", []byte("in"))), "acknowledged by the stream")

			for name, edit := range tc.bad {
				t.Run(name, func(t *testing.T) {
					cfg := natstest.Config(url)
					edit(&cfg)
					pub := publisher(t, cfg)
					require.Never(t, func() bool { return pub.Ping(t.Context()) == nil }, 2*time.Second, 100*time.Millisecond,
						"refused credentials must not look ready")
				})
			}
		})
	}
}
