package reporter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// LoadDir reads every definition file <dir>/<tenant>/*.yaml|*.yml of the
// tenants keep accepts (nil: all). Any error fails the whole load, so a
// reload keeps the previous definitions.
func LoadDir(dir string, keep func(tenant string) bool) ([]Report, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read reports directory %s: %w", dir, err)
	}
	var (
		out  []Report
		errs []error
	)
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		// Kubernetes mounts ConfigMap items through symlinks: stat follows.
		fi, err := os.Stat(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("stat %s: %w", path, err))
			continue
		}
		if !fi.IsDir() {
			if isDefinitionFile(name) {
				errs = append(errs, fmt.Errorf("report file %s: outside a tenant directory: put it in %s/<tenant>/", path, dir))
			}
			continue
		}
		if !contract.ValidTenant(name) {
			errs = append(errs, fmt.Errorf("reports directory %s: %q is not a valid tenant", path, name))
			continue
		}
		if keep != nil && !keep(name) {
			continue
		}
		rs, err := loadTenant(name, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func loadTenant(tenant, dir string) ([]Report, error) {
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read reports directory %s: %w", dir, err)
	}
	var (
		out  []Report
		errs []error
	)
	seen := map[string]string{}
	for _, f := range files {
		if f.IsDir() || strings.HasPrefix(f.Name(), ".") || !isDefinitionFile(f.Name()) {
			continue
		}
		path := filepath.Join(dir, f.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read report file %s: %w", path, err))
			continue
		}
		rs, err := ParseFile(tenant, path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			if prev, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("%s:%d: report %q: name already used in %s", path, r.Line, r.Name, prev))
				continue
			}
			seen[r.Name] = path
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

func isDefinitionFile(name string) bool {
	return slices.Contains([]string{".yaml", ".yml"}, filepath.Ext(name))
}
