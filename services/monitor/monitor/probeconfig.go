package monitor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProbeConfigPath serves edge probes their remote configuration.
const ProbeConfigPath = "/probe/config"

// ProbeConfigSignatureHeader carries the base64 ed25519 signature of the
// configuration (the probe verifies it with its pinned public key).
const ProbeConfigSignatureHeader = "X-Tmaflow-Signature"

// probeConfigDir is where the configurations are: "probes/" beside the
// registry file that holds the probes' credentials, one
// "<probe id>.yaml" and its "<probe id>.yaml.sig" (made with
// `probe sign`) per probe. The monitor only serves them: the signing key
// never leaves the operator.
func (s *Service) probeConfigDir() string {
	if s.cfg.Auth.Registry == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(s.cfg.Auth.Registry), "probes")
}

// serveProbeConfig answers GET /probe/config for the probe whose
// credentials the request carries: 200 with the configuration and its
// signature, 304 when the probe has it (ETag), 404 when there is none.
func (s *Service) serveProbeConfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, http.StatusMethodNotAllowed, errorBody(errMethod, "use GET", nil, 0))
		return
	}
	who, code := s.authenticate(w, r)
	if code != 0 {
		return
	}
	if who.probeID < 0 {
		s.fail(w, http.StatusForbidden, errorBody(errForbidden, "a remote configuration is served to a probe's own credentials only", nil, 0))
		return
	}
	dir := s.probeConfigDir()
	if dir == "" {
		s.fail(w, http.StatusNotFound, errorBody(errBadData, "no probe configurations: authentication is disabled", nil, 0))
		return
	}
	base := filepath.Join(dir, strconv.FormatInt(who.probeID, 10)+".yaml")
	body, err := os.ReadFile(base)
	if err == nil {
		var sig []byte
		sig, err = os.ReadFile(base + ".sig")
		if err == nil {
			sum := sha256.Sum256(body)
			etag := `"` + hex.EncodeToString(sum[:16]) + `"`
			w.Header().Set("ETag", etag)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set(ProbeConfigSignatureHeader, strings.TrimSpace(string(sig)))
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/yaml")
			if _, err := w.Write(body); err != nil {
				s.logger.Debug("write probe configuration", "probe", who.probeID, "err", err)
			}
			return
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		s.fail(w, http.StatusNotFound, errorBody(errBadData, "no signed configuration for probe "+strconv.FormatInt(who.probeID, 10), nil, 0))
		return
	}
	s.logger.Error("read probe configuration", "probe", who.probeID, "err", err)
	s.fail(w, http.StatusInternalServerError, errorBody(errUnavailable, "probe configuration unreadable", nil, 0))
}
