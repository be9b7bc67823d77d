package kafka_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// selfSigned returns a TLS server config for 127.0.0.1 and the PEM file of
// its certificate, which is its own CA.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	certFile, keyFile := peertest.SelfSignedCert(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certFile
}

// roundTrip publishes one message and consumes it in a group.
func roundTrip(t *testing.T, cfg kafka.Config) error {
	t.Helper()
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	if err != nil {
		return err
	}
	defer func() { require.NoError(t, pub.Close()) }()
	if err := pub.Publish("secure", message.NewMessage("1", []byte("hello"))); err != nil {
		return err
	}
	cfg.ConsumerGroup = "g"
	sub, err := kafka.NewSubscriber(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	msgs, err := sub.Subscribe(context.Background(), "secure")
	require.NoError(t, err)
	m := receive(t, msgs)
	require.Equal(t, "hello", string(m.Payload))
	m.Ack()
	return nil
}

func TestSecurity(t *testing.T) {
	serverTLS, caFile := selfSigned(t)
	passwordFile := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(passwordFile, []byte("s3cret\n"), 0o600))
	tests := []struct {
		name    string
		cluster []kfake.Opt
		edit    func(*kafka.Config)
		wantErr string
	}{
		{
			name:    "sasl plain",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "probe", "s3cret")},
			edit: func(c *kafka.Config) {
				c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLPlain, Username: "probe", Password: "s3cret"}
			},
		},
		{
			name:    "sasl scram-sha-256 with a password file",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "probe", "s3cret")},
			edit: func(c *kafka.Config) {
				c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA256, Username: "probe", PasswordFile: passwordFile}
			},
		},
		{
			name:    "sasl wrong password",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "probe", "s3cret")},
			edit: func(c *kafka.Config) {
				c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: "probe", Password: "wrong"}
				c.MaxAttempts = 1
			},
			wantErr: "SASL",
		},
		{
			name:    "tls",
			cluster: []kfake.Opt{kfake.TLS(serverTLS)},
			edit:    func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CAFile: caFile} },
		},
		{
			name:    "tls with sasl",
			cluster: []kfake.Opt{kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("PLAIN", "probe", "s3cret")},
			edit: func(c *kafka.Config) {
				c.TLS = kafka.TLSConfig{Enabled: true, CAFile: caFile}
				c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLPlain, Username: "probe", Password: "s3cret"}
			},
		},
		{
			name:    "tls with an unknown CA",
			cluster: []kfake.Opt{kfake.TLS(serverTLS)},
			edit: func(c *kafka.Config) {
				c.TLS = kafka.TLSConfig{Enabled: true}
				c.MaxAttempts = 1
			},
			wantErr: "certificate",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(newCluster(t, tc.cluster...))
			cfg.WriteTimeout = 5 * time.Second
			tc.edit(&cfg)
			require.NoError(t, cfg.Validate())
			err := roundTrip(t, cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			pub, perr := kafka.NewPublisher(cfg, testLogger(t), nil)
			require.NoError(t, perr)
			defer func() { require.NoError(t, pub.Close()) }()
			require.ErrorContains(t, pub.Ping(context.Background()), tc.wantErr, "readiness names the cause")
		})
	}
}

func TestSecurityConfig(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*kafka.Config)
		wantErr string
	}{
		{"tls file without tls", func(c *kafka.Config) { c.TLS.CAFile = "ca.pem" }, "kafka.tls.* options need kafka.tls.enabled"},
		{"cert without key", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem"} }, "kafka.tls.cert-file and kafka.tls.key-file go together"},
		{"unknown mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "GSSAPI", Username: "u"} }, `kafka.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`},
		{"no username", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLPlain} }, "kafka.sasl.username is required"},
		{"credentials without mechanism", func(c *kafka.Config) { c.SASL.Username = "u" }, "kafka.sasl credentials need kafka.sasl.mechanism"},
		{"password twice", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: kafka.SASLPlain, Username: "u", Password: "p", PasswordFile: "f"}
		}, "exclude each other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kafka.DefaultConfig()
			tc.edit(&cfg)
			require.ErrorContains(t, cfg.Validate(), tc.wantErr)
		})
	}

	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"}
	cfg.TLS = kafka.TLSConfig{Enabled: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	_, err := kafka.NewPublisher(cfg, nil, nil)
	require.ErrorContains(t, err, "read kafka.tls.ca-file")
	_, err = cfg.Dialer()
	require.ErrorContains(t, err, "read kafka.tls.ca-file")
}
