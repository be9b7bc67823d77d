package persister

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// buildInfo is /api/v1/status/buildinfo. Version is the Prometheus
// release whose PromQL engine and TSDB are embedded, since clients
// (Grafana) choose features by it.
type buildInfo struct {
	Application string `json:"application"`
	Version     string `json:"version"`
	Revision    string `json:"revision"`
	Branch      string `json:"branch"`
	BuildUser   string `json:"buildUser"`
	BuildDate   string `json:"buildDate"`
	GoVersion   string `json:"goVersion"`
}

func (s *Service) buildInfo(*http.Request, string) apiResult { return apiResult{data: s.build} }

func newBuildInfo() buildInfo {
	b := buildInfo{Application: "tmaflow", Version: "3.0.0", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/prometheus/prometheus" {
			b.Version = prometheusRelease(d.Version, b.Version)
		}
	}
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			b.Revision = kv.Value
		case "vcs.time":
			b.BuildDate = kv.Value
		}
	}
	return b
}

// prometheusRelease maps the Go module version of Prometheus 3 (v0.3MM.P)
// to its release (3.MM.P).
func prometheusRelease(mod, fallback string) string {
	v, ok := strings.CutPrefix(mod, "v0.")
	if !ok {
		return fallback
	}
	minor, patch, ok := strings.Cut(v, ".")
	if !ok || len(minor) < 3 || minor[0] != '3' {
		return fallback
	}
	m, err := strconv.Atoi(minor[1:])
	if err != nil {
		return fallback
	}
	patch, _, _ = strings.Cut(patch, "-")
	return fmt.Sprintf("3.%d.%s", m, patch)
}
