package reporter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// Credentials are HTTP Basic credentials a tenant's queries are sent
// with: a probe of the tenant for the persister's API (its probes'
// credentials), or what a proxy in front of Prometheus wants.
type Credentials struct {
	Username string
	Password string
}

type credentialsYAML struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// LoadCredentials reads a credentials file: a map from tenant to
// username and password or password_file (relative to the file).
func LoadCredentials(path string) (map[string]Credentials, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credentials file %s: %w", path, err)
	}
	var raw map[string]credentialsYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	out := make(map[string]Credentials, len(raw))
	var errs []error
	tenants := make([]string, 0, len(raw))
	for t := range raw {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		c := raw[t]
		switch {
		case !contract.ValidTenant(t):
			errs = append(errs, fmt.Errorf("credentials file %s: %q is not a valid tenant", path, t))
			continue
		case c.Username == "":
			errs = append(errs, fmt.Errorf("credentials file %s: tenant %s: username missing", path, t))
			continue
		case (c.Password == "") == (c.PasswordFile == ""):
			errs = append(errs, fmt.Errorf("credentials file %s: tenant %s: give one of password and password_file", path, t))
			continue
		}
		pw := c.Password
		if c.PasswordFile != "" {
			pf := c.PasswordFile
			if !filepath.IsAbs(pf) {
				pf = filepath.Join(filepath.Dir(path), pf)
			}
			b, err := os.ReadFile(pf)
			if err != nil {
				errs = append(errs, fmt.Errorf("credentials file %s: tenant %s: %w", path, t, err))
				continue
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		out[t] = Credentials{Username: c.Username, Password: pw}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
