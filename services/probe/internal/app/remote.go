package app

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/services/probe/internal/ship"
)

// SignatureHeader carries the base64 ed25519 signature of a remote
// configuration's body.
const SignatureHeader = "X-Tmaflow-Signature"

// RemoteConfig is where the probe fetches its configuration and the key
// that must have signed it.
type RemoteConfig struct {
	// HTTPConfig's URL is the monitor's GET /probe/config; its
	// credentials are the probe's own.
	ship.HTTPConfig `yaml:",inline"`
	// PublicKey is the base64 ed25519 public key configurations must be
	// signed with.
	PublicKey string        `yaml:"public_key"`
	Interval  time.Duration `yaml:"interval"`
	// RollbackAfter is how long a new configuration has to ship a batch
	// on every output before the previous one is restored.
	RollbackAfter time.Duration `yaml:"rollback_after"`
}

// Enabled reports whether a URL is set.
func (c RemoteConfig) Enabled() bool { return c.URL != "" }

// Validate checks the section (an empty one disables remote config).
func (c RemoteConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	errs := []error{c.HTTPConfig.Validate()}
	if _, err := c.key(); err != nil {
		errs = append(errs, err)
	}
	if c.Interval < 0 || c.RollbackAfter < 0 {
		errs = append(errs, errors.New("interval and rollback_after must be ≥ 0"))
	}
	return errors.Join(errs...)
}

func (c RemoteConfig) key() (ed25519.PublicKey, error) {
	k, err := base64.StdEncoding.DecodeString(c.PublicKey)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public_key: want the base64 of a %d-byte ed25519 public key", ed25519.PublicKeySize)
	}
	return k, nil
}

// errBadSignature refuses a configuration the pinned key did not sign.
var errBadSignature = errors.New("signature does not verify with the pinned public key")

// verify checks sig (base64) over body with the pinned key.
func (c RemoteConfig) verify(body []byte, sig string) error {
	key, err := c.key()
	if err != nil {
		return err
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || !ed25519.Verify(key, body, s) {
		return errBadSignature
	}
	return nil
}

// signed is a configuration as fetched: its body and signature.
type signed struct {
	body []byte
	sig  string
}

// digest names a body (for versions and for not retrying a bad one).
func (s signed) digest() string {
	h := sha256.Sum256(s.body)
	return hex.EncodeToString(h[:8])
}

// fetcher fetches the remote configuration.
type fetcher struct {
	cfg    RemoteConfig
	client *http.Client
	auth   string // the Authorization header
	etag   string // of the last configuration fetched
}

func newFetcher(cfg RemoteConfig) (*fetcher, error) {
	client, auth, err := cfg.Client()
	if err != nil {
		return nil, fmt.Errorf("remote_config: %w", err)
	}
	return &fetcher{cfg: cfg, client: client, auth: auth}, nil
}

// errNoRemoteConfig: the central side has no configuration for the probe.
var errNoRemoteConfig = errors.New("no remote configuration for this probe")

// errNotModified: the configuration is the one fetched last.
var errNotModified = errors.New("remote configuration not modified")

func (f *fetcher) fetch(ctx context.Context) (signed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.URL, nil)
	if err != nil {
		return signed{}, fmt.Errorf("fetch config %s: %w", f.cfg.URL, err)
	}
	if f.auth != "" {
		req.Header.Set("Authorization", f.auth)
	}
	if f.etag != "" {
		req.Header.Set("If-None-Match", f.etag)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return signed{}, fmt.Errorf("fetch config %s: %w", f.cfg.URL, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if cerr := resp.Body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return signed{}, fmt.Errorf("fetch config %s: %w", f.cfg.URL, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return signed{}, errNotModified
	case resp.StatusCode == http.StatusNotFound:
		return signed{}, errNoRemoteConfig
	case resp.StatusCode != http.StatusOK:
		return signed{}, fmt.Errorf("fetch config %s: %s", f.cfg.URL, resp.Status)
	}
	f.etag = resp.Header.Get("ETag")
	return signed{body: body, sig: resp.Header.Get(SignatureHeader)}, nil
}

// Where the last applied remote configuration is kept, beside the queue.
const (
	savedConfig    = "remote-config.yaml"
	savedSignature = "remote-config.sig"
)

func saveSigned(dir string, s signed) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save remote config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, savedSignature+".tmp"), []byte(s.sig), 0o600); err != nil {
		return fmt.Errorf("save remote config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, savedConfig+".tmp"), s.body, 0o600); err != nil {
		return fmt.Errorf("save remote config: %w", err)
	}
	for _, n := range []string{savedSignature, savedConfig} {
		if err := os.Rename(filepath.Join(dir, n+".tmp"), filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("save remote config: %w", err)
		}
	}
	return nil
}

func loadSigned(dir string) (signed, error) {
	body, err := os.ReadFile(filepath.Join(dir, savedConfig))
	if err != nil {
		return signed{}, err
	}
	sig, err := os.ReadFile(filepath.Join(dir, savedSignature))
	if err != nil {
		return signed{}, err
	}
	return signed{body: body, sig: string(sig)}, nil
}

// parseRemote verifies and parses a fetched configuration; the local
// file's remote_config section stays in force.
func parseRemote(local FileConfig, s signed) (FileConfig, error) {
	if err := local.Remote.verify(s.body, s.sig); err != nil {
		return FileConfig{}, err
	}
	c, err := ParseFileConfig(s.body)
	if err != nil {
		return FileConfig{}, err
	}
	c.Remote = local.Remote
	if c.Version == "" {
		c.Version = s.digest()
	}
	return c, nil
}
