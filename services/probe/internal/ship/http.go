package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// TLSConfig is a client's TLS: the CA to trust, a client certificate for
// mTLS.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Build returns the tls.Config (nil when nothing is set).
func (c TLSConfig) Build() (*tls.Config, error) {
	if c == (TLSConfig{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opted into by configuration
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls ca %s: %w", c.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read tls ca %s: no PEM certificates", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls client certificate %s: %w", c.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// HTTPConfig is what the HTTP outputs share.
type HTTPConfig struct {
	URL string `yaml:"url"`
	// Username/Password: HTTP basic auth; BearerToken: Authorization:
	// Bearer (tmaflow's monitor takes "<probe>:<secret>").
	Username        string        `yaml:"username"`
	Password        string        `yaml:"password"`
	PasswordFile    string        `yaml:"password_file"`
	BearerToken     string        `yaml:"bearer_token"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	Timeout         time.Duration `yaml:"timeout"`
	TLS             TLSConfig     `yaml:"tls"`
}

// Validate checks the configuration.
func (c HTTPConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		errs = append(errs, fmt.Errorf("url %q: want http:// or https://", c.URL))
	}
	basic := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	bearer := c.BearerToken != "" || c.BearerTokenFile != ""
	if basic && bearer {
		errs = append(errs, errors.New("basic auth and bearer token are exclusive"))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("password and password_file are exclusive"))
	}
	if c.BearerToken != "" && c.BearerTokenFile != "" {
		errs = append(errs, errors.New("bearer_token and bearer_token_file are exclusive"))
	}
	return errors.Join(errs...)
}

// httpPoster posts bodies with the configured auth and TLS.
type httpPoster struct {
	cfg    HTTPConfig
	client *http.Client
	auth   string // the Authorization header
}

func newHTTPPoster(cfg HTTPConfig) (*httpPoster, error) {
	client, auth, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	return &httpPoster{cfg: cfg, client: client, auth: auth}, nil
}

// Client builds the HTTP client (TLS, timeout: 10 s by default) and the
// Authorization header value ("" without credentials) of cfg; the
// probe's remote configuration fetches with it too.
func (cfg HTTPConfig) Client() (_ *http.Client, auth string, _ error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, "", err
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 4,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	switch {
	case cfg.Username != "" || cfg.Password != "" || cfg.PasswordFile != "":
		pw, err := secret(cfg.Password, cfg.PasswordFile)
		if err != nil {
			return nil, "", err
		}
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+pw))
	case cfg.BearerToken != "" || cfg.BearerTokenFile != "":
		tok, err := secret(cfg.BearerToken, cfg.BearerTokenFile)
		if err != nil {
			return nil, "", err
		}
		auth = "Bearer " + tok
	}
	return client, auth, nil
}

func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", file, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// post sends body with headers; 2xx is success, 400/422 a permanent
// refusal, anything else (401, 403, 413, 429, 5xx, no answer) is retried.
func (p *httpPoster) post(ctx context.Context, body []byte, headers map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %s: %w", p.cfg.URL, err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", p.cfg.URL, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("post %s: close body: %w", p.cfg.URL, err)
	}
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("post %s: %s: %s", p.cfg.URL, resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity {
		return &PermanentError{Err: err}
	}
	return err
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}
