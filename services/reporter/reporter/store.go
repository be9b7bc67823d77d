package reporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// Store keeps generated reports and each report's last run on disk:
//
//	<dir>/reports/<tenant>/<report>/<base>.json|.html|.<n>.csv
//	<dir>/state/<tenant>/<report>.json
//
// where base names the period, so a rerun overwrites. Each file is
// written to a temporary name and renamed: a reader sees the old or the
// new file, never half of one. The JSON document is written last and is
// what the listing reads, so a report is listed only once complete.
type Store struct {
	dir string
}

// OpenStore creates dir's layout.
func OpenStore(dir string) (*Store, error) {
	for _, sub := range []string{"reports", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create report store %s: %w", dir, err)
		}
	}
	return &Store{dir: dir}, nil
}

// Base is the file name stem of a report's period.
func Base(d *Document) string {
	const f = "20060102T150405Z"
	return d.Period.Start.UTC().Format(f) + "_" + d.Period.End.UTC().Format(f)
}

// File is a named file of a report.
type File struct {
	Name string
	Data []byte
}

// Save writes the files then the document of d.
func (s *Store) Save(d *Document, files []File, doc []byte) error {
	dir := filepath.Join(s.dir, "reports", d.Tenant, d.Report)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report directory %s: %w", dir, err)
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.Name), f.Data); err != nil {
			return err
		}
	}
	return writeAtomic(filepath.Join(dir, Base(d)+".json"), doc)
}

// writeAtomic writes data to path through a synced temporary file.
func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", tmp.Name(), err), tmp.Close())
	}
	if err := tmp.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync %s: %w", tmp.Name(), err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp.Name(), err)
	}
	return nil
}

// Entry is a stored report as listed (GET /api/v1/reports), its JSON
// names camelCase like the document's.
type Entry struct {
	Tenant string `json:"tenant"`
	Report string `json:"report"`
	// Base is the file name stem of the report's period.
	Base  string `json:"base"`
	Title string `json:"title"`
	ID    string `json:"id"`
	// Start and End are the period's.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Files []string  `json:"files"`
}

// List returns the stored reports of tenant (every tenant when empty),
// newest period first.
func (s *Store) List(tenant string) ([]Entry, error) {
	root := filepath.Join(s.dir, "reports")
	if tenant != "" {
		if !contract.ValidTenant(tenant) {
			return nil, fmt.Errorf("invalid tenant %q", tenant)
		}
		root = filepath.Join(root, tenant)
	}
	var out []Entry
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || filepath.Ext(name) != ".json" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read report %s: %w", path, err)
		}
		var d Document
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("decode report %s: %w", path, err)
		}
		out = append(out, Entry{Tenant: d.Tenant, Report: d.Report, Base: strings.TrimSuffix(name, ".json"), Title: d.Title, ID: d.ID,
			Start: d.Period.Start, End: d.Period.End, Files: append(slices.Clone(d.Files), name)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.End.Compare(a.End); c != 0 {
			return c
		}
		return strings.Compare(a.Tenant+"/"+a.Report, b.Tenant+"/"+b.Report)
	})
	return out, nil
}

// Path is the path of a stored file, or "" if the names are not safe.
func (s *Store) Path(tenant, report, file string) string {
	if !contract.ValidTenant(tenant) || !validName.MatchString(report) || file == "" || strings.HasPrefix(file, ".") ||
		strings.ContainsAny(file, `/\`) {
		return ""
	}
	return filepath.Join(s.dir, "reports", tenant, report, file)
}

// state is a report's last run, persisted for catching up after downtime.
type state struct {
	// LastRun is the scheduled time of the last run made or given up.
	LastRun time.Time `json:"lastRun"`
}

func (s *Store) statePath(tenant, report string) string {
	return filepath.Join(s.dir, "state", tenant, report+".json")
}

// LastRun returns the scheduled time of the report's last run; ok is
// false when it never ran.
func (s *Store) LastRun(tenant, report string) (t time.Time, ok bool, err error) {
	data, err := os.ReadFile(s.statePath(tenant, report))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read report state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return time.Time{}, false, fmt.Errorf("decode report state %s: %w", s.statePath(tenant, report), err)
	}
	return st.LastRun, true, nil
}

// SetLastRun records the scheduled time of the report's last run.
func (s *Store) SetLastRun(tenant, report string, t time.Time) error {
	p := s.statePath(tenant, report)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create report state directory: %w", err)
	}
	data, err := json.Marshal(state{LastRun: t.UTC()})
	if err != nil {
		return fmt.Errorf("encode report state: %w", err)
	}
	return writeAtomic(p, data)
}
