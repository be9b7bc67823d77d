package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// TLSConfig secures the connections to the brokers.
type TLSConfig struct {
	Enabled bool
	// CAFile verifies the brokers' certificates; empty: the system pool.
	CAFile string
	// CertFile and KeyFile are the client certificate, for brokers that
	// authenticate clients by TLS (ssl.client.auth=required).
	CertFile, KeyFile  string
	ServerName         string
	InsecureSkipVerify bool
}

// SASLConfig authenticates the client to the brokers.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none.
	Mechanism    string
	Username     string
	Password     string
	PasswordFile string
}

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

func (c *TLSConfig) registerFlags(f service.FlagSet) {
	f.BoolVar(&c.Enabled, "kafka.tls.enabled", false, "Connect to the brokers over TLS.")
	f.StringVar(&c.CAFile, "kafka.tls.ca-file", "", "CA certificates (PEM) that verify the brokers; empty: the system's.")
	f.StringVar(&c.CertFile, "kafka.tls.cert-file", "", "Client certificate (PEM), for brokers that authenticate clients by TLS.")
	f.StringVar(&c.KeyFile, "kafka.tls.key-file", "", "Key (PEM) of the client certificate.")
	f.StringVar(&c.ServerName, "kafka.tls.server-name", "", "Name the brokers' certificates must carry; empty: the host dialed.")
	f.BoolVar(&c.InsecureSkipVerify, "kafka.tls.insecure-skip-verify", false, "Do not verify the brokers' certificates (testing only).")
}

func (c *SASLConfig) registerFlags(f service.FlagSet) {
	f.StringVar(&c.Mechanism, "kafka.sasl.mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.")
	f.StringVar(&c.Username, "kafka.sasl.username", "", "SASL username.")
	f.StringVar(&c.Password, "kafka.sasl.password", "", "SASL password (prefer the environment, TMAFLOW_KAFKA_SASL_PASSWORD, or the password file).")
	f.StringVar(&c.PasswordFile, "kafka.sasl.password-file", "", "File holding the SASL password, read at start.")
}

func (c TLSConfig) validate() []error {
	var errs []error
	if !c.Enabled && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify) {
		errs = append(errs, errors.New("kafka.tls.* options need kafka.tls.enabled"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("kafka.tls.cert-file and kafka.tls.key-file go together"))
	}
	return errs
}

func (c SASLConfig) validate() []error {
	var errs []error
	switch strings.ToUpper(c.Mechanism) {
	case "":
		if c.Username != "" || c.Password != "" || c.PasswordFile != "" {
			errs = append(errs, errors.New("kafka.sasl credentials need kafka.sasl.mechanism"))
		}
		return errs
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism must be %s, %s or %s, got %q", SASLPlain, SASLScramSHA256, SASLScramSHA512, c.Mechanism))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("kafka.sasl.username is required with kafka.sasl.mechanism"))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("kafka.sasl.password and kafka.sasl.password-file exclude each other"))
	}
	return errs
}

// security is the resolved TLS and SASL settings of a client.
type security struct {
	tls  *tls.Config    // nil: plaintext
	sasl sasl.Mechanism // nil: none
}

// resolveSecurity reads the files TLS and SASL refer to.
func (c Config) resolveSecurity() (*security, error) {
	sec := &security{}
	if c.TLS.Enabled {
		t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify} //nolint:gosec // opt-in flag
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read kafka.tls.ca-file: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca-file %s: no PEM certificate", c.TLS.CAFile)
			}
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load kafka client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		sec.tls = t
	}
	if c.SASL.Mechanism != "" {
		password := c.SASL.Password
		if c.SASL.PasswordFile != "" {
			b, err := os.ReadFile(c.SASL.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("read kafka.sasl.password-file: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		var err error
		switch strings.ToUpper(c.SASL.Mechanism) {
		case SASLPlain:
			sec.sasl = plain.Mechanism{Username: c.SASL.Username, Password: password}
		case SASLScramSHA256:
			sec.sasl, err = scram.Mechanism(scram.SHA256, c.SASL.Username, password)
		case SASLScramSHA512:
			sec.sasl, err = scram.Mechanism(scram.SHA512, c.SASL.Username, password)
		default:
			err = fmt.Errorf("unknown mechanism %q", c.SASL.Mechanism)
		}
		if err != nil {
			return nil, fmt.Errorf("kafka sasl: %w", err)
		}
	}
	return sec, nil
}

// withSecurity returns c with its TLS and SASL settings resolved, so the
// dialers and transports made from the copy use them.
func (c Config) withSecurity() (Config, error) {
	if c.security != nil {
		return c, nil
	}
	sec, err := c.resolveSecurity()
	if err != nil {
		return c, err
	}
	c.security = sec
	return c, nil
}

// Dialer returns a kafka-go dialer with the client id, dial timeout, TLS
// and SASL of c, for code that uses kafka-go directly.
func (c Config) Dialer() (*kafka.Dialer, error) {
	c, err := c.withSecurity()
	if err != nil {
		return nil, err
	}
	return c.dialer(), nil
}
