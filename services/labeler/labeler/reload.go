package labeler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/tmaflow/tmaflow/pkg/registry"
)

// Reload triggers.
const (
	triggerSignal = "signal"
	triggerFile   = "file"
)

// Reload re-reads the registry file (on SIGHUP). On error the registry in
// force stays; records being mapped finish with the registry they started
// with, the next ones use the new one, so nothing in flight is lost.
func (s *Service) Reload() error {
	return s.reload(triggerSignal, true)
}

// fileState is what the watcher compares before hashing the file.
type fileState struct {
	size    int64
	modTime time.Time
}

func statFile(path string) (fileState, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}, err
	}
	return fileState{size: fi.Size(), modTime: fi.ModTime()}, nil
}

// reload loads the file and swaps it in if its content changed; force
// reloads (and reports) even an unchanged file. The watcher acts on a
// change only once the file's size and modification time are the same at
// two consecutive checks: a file caught between an editor's truncate and
// its write would load as a registry without descriptions.
func (s *Service) reload(trigger string, force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	st, statErr := statFile(s.cfg.Registry)
	if !force && statErr == nil {
		settled := st == s.pending
		s.pending = st
		if st == s.seen || !settled {
			return nil
		}
	}
	s.seen, s.pending = st, st
	data, err := os.ReadFile(s.cfg.Registry)
	if err != nil {
		return s.reloadFailed(trigger, "", fmt.Errorf("read registry %s: %w", s.cfg.Registry, err))
	}
	sum := sha256Hex(data)
	cur := s.snap.Load()
	if sum == cur.sha256 && !force {
		s.lastError = nil // the file was put back as it was
		s.metrics.reloads.WithLabelValues(trigger, "unchanged").Inc()
		return nil
	}
	if !force && s.lastError != nil && s.lastError.sha256 == sum {
		return nil // the same broken content: reported already
	}
	snap, err := parseSnapshot(s.cfg.Registry, data, s.now())
	if err != nil {
		return s.reloadFailed(trigger, sum, err)
	}
	s.snap.Store(snap)
	s.lastError = nil
	s.metrics.loaded(snap)
	s.metrics.reloads.WithLabelValues(trigger, "success").Inc()
	s.logger.Info("registry loaded", "trigger", trigger, "path", s.cfg.Registry, "sha256", snap.sha256,
		"probes", len(snap.file.Probes), "resources", len(snap.file.Resources),
		"descriptions", len(snap.file.Descriptions), "label_rules", len(snap.file.LabelRules))
	return nil
}

func (s *Service) reloadFailed(trigger, sum string, err error) error {
	s.lastError = &loadError{err: err, at: s.now(), sha256: sum}
	s.metrics.reloads.WithLabelValues(trigger, "failure").Inc()
	s.logger.Error("registry reload failed, keeping the registry in force", "trigger", trigger, "err", err)
	return err
}

// watchRegistry checks the file every check interval until ctx ends.
func (s *Service) watchRegistry(ctx context.Context) {
	t := time.NewTicker(s.cfg.RegistryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Errors are logged and counted by reload.
			_ = s.reload(triggerFile, false)
		}
	}
}

// registryView is the JSON of GET /registry: the file in force (secret
// hashes left out by registry's JSON tags) and where it came from.
type registryView struct {
	Path     string    `json:"path"`
	SHA256   string    `json:"sha256"`
	LoadedAt time.Time `json:"loaded_at"`
	// LastError is the last failed reload since the one in force.
	LastError *errorView `json:"last_error,omitempty"`
	// MetaLabels are the labels label_rules can read besides a series'.
	MetaLabels []string `json:"meta_labels"`
	*registry.File
}

type errorView struct {
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

func (s *Service) serveRegistry(w http.ResponseWriter, _ *http.Request) {
	snap := s.snap.Load()
	v := registryView{
		Path: snap.path, SHA256: snap.sha256, LoadedAt: snap.loadedAt, File: snap.file,
		MetaLabels: []string{MetaMQTTTopic, MetaSource, MetaTenant, MetaResourceType, MetaResourceAddress},
	}
	s.reloadMu.Lock()
	if e := s.lastError; e != nil {
		v.LastError = &errorView{Error: e.err.Error(), At: e.at}
	}
	s.reloadMu.Unlock()
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode registry: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(append(body, '\n')); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		s.logger.Debug("write registry response", "err", err)
	}
}
