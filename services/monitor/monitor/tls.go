package monitor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// tlsFiles serves TLS from files that Reload re-reads, so certificates can
// be rotated without a restart and without dropping connections.
type tlsFiles struct {
	cfg TLSConfig
	cur atomic.Pointer[tls.Config]
}

func newTLSFiles(cfg TLSConfig) (*tlsFiles, error) {
	t := &tlsFiles{cfg: cfg}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tlsFiles) load() error {
	cert, err := tls.LoadX509KeyPair(t.cfg.CertFile, t.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s: %w", t.cfg.CertFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(t.cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("read tls client ca %s: %w", t.cfg.ClientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("read tls client ca %s: %w", t.cfg.ClientCAFile, errors.New("no PEM certificates"))
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	t.cur.Store(c)
	return nil
}

// serverConfig is the listener's config: every handshake takes the
// currently loaded one.
func (t *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load(), nil
		},
	}
}
