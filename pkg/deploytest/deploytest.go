// Package deploytest reads how the deployment files run a service (the
// command line and the TMAFLOW_* variables docker-compose.yml and the
// kustomizations under deploy/k8s give it) so that the service's own tests
// prove it defines every flag they set: a renamed flag then fails `make
// test` instead of a rollout. It also checks that the one Dockerfile at
// the root builds every service (ImageProblems).
package deploytest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Use is one deployment's way of running a service.
type Use struct {
	Where string   // the deployment, for messages
	Args  []string // the command line
	Env   []string // the TMAFLOW_* variables it sets, by name
}

// Uses reads how root's docker-compose.yml, deploy/k8s/base and each
// overlay in deploy/k8s/overlays run svc. A service a file does not run
// has no Use from it.
func Uses(root, svc string) ([]Use, error) {
	var uses []Use
	compose, ok, err := composeUse(filepath.Join(root, "docker-compose.yml"), svc)
	if err != nil {
		return nil, err
	}
	if ok {
		uses = append(uses, compose)
	}
	base, baseMaps, ok, err := baseUse(filepath.Join(root, "deploy", "k8s", "base"), svc)
	if err != nil {
		return nil, err
	}
	if !ok {
		return uses, nil
	}
	uses = append(uses, base)
	overlays, err := filepath.Glob(filepath.Join(root, "deploy", "k8s", "overlays", "*", "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	for _, k := range overlays {
		u, err := overlayUse(filepath.Dir(k), svc, base, baseMaps)
		if err != nil {
			return nil, err
		}
		uses = append(uses, u)
	}
	return uses, nil
}

// Main is a service's main: it runs with args and prints its usage to
// stderr.
type Main func(args []string, stderr io.Writer) error

// CheckService fails t for every problem (see Problems) of every
// deployment of svc in root.
func CheckService(t *testing.T, root, svc string, main Main) {
	t.Helper()
	uses, err := Uses(root, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) == 0 {
		t.Fatalf("no deployment in %s runs %s", root, svc)
	}
	for _, u := range uses {
		t.Run(u.Where, func(t *testing.T) {
			for _, p := range Problems(u, main) {
				t.Error(p)
			}
		})
	}
}

// Problems runs main with the use's args and -h: it must stop at -h (every
// flag before it defined) and print the usage, which must list a flag for
// every variable of the use.
func Problems(u Use, main Main) []string {
	var usage strings.Builder
	err := main(append(slices.Clip(u.Args), "-h"), &usage)
	if !errors.Is(err, flag.ErrHelp) {
		return []string{fmt.Sprintf("command line %q: %v", u.Args, err)}
	}
	env := map[string]bool{}
	for _, name := range FlagNames(usage.String()) {
		env[service.EnvName(name)] = true
	}
	if len(env) == 0 {
		return []string{"no flags in the usage:\n" + usage.String()}
	}
	var out []string
	for _, v := range u.Env {
		if !env[v] {
			out = append(out, v+" sets no flag")
		}
	}
	return out
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([^\s=]+)`)

// FlagNames is the flags a flag.FlagSet's usage (PrintDefaults) lists.
func FlagNames(usage string) []string {
	var out []string
	for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
		out = append(out, m[1])
	}
	return out
}

func composeUse(path, svc string) (Use, bool, error) {
	var doc struct {
		Services map[string]struct {
			Command     []string `yaml:"command"`
			Environment any      `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := readYAML(path, &doc); err != nil {
		return Use{}, false, err
	}
	s, ok := doc.Services[svc]
	if !ok {
		return Use{}, false, nil
	}
	u := Use{Where: filepath.Base(path), Args: s.Command}
	switch env := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k := range env {
			u.Env = append(u.Env, k)
		}
	case []any:
		for _, kv := range env {
			k, _, _ := strings.Cut(fmt.Sprint(kv), "=")
			u.Env = append(u.Env, k)
		}
	default:
		return Use{}, false, fmt.Errorf("%s: services.%s.environment: neither a map nor a list", path, svc)
	}
	u.Env = tmaflowVars(u.Env)
	return u, true, nil
}

// kustomization is the part of a kustomization.yaml that sets a
// container's command line and variables.
type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
	} `yaml:"configMapGenerator"`
	Patches []struct {
		Target struct {
			Name string `yaml:"name"`
		} `yaml:"target"`
		Patch string `yaml:"patch"`
	} `yaml:"patches"`
}

// workload is the part of a Deployment or StatefulSet that runs a
// container.
type workload struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Name    string   `yaml:"name"`
					Args    []string `yaml:"args"`
					Env     []envVar `yaml:"env"`
					EnvFrom []struct {
						ConfigMapRef struct {
							Name string `yaml:"name"`
						} `yaml:"configMapRef"`
					} `yaml:"envFrom"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type envVar struct {
	Name string `yaml:"name"`
}

// readKustomization reads dir's kustomization, the variable names of
// each config map it generates, and what to call it in messages.
func readKustomization(dir string) (k kustomization, maps map[string][]string, where string, err error) {
	if err := readYAML(filepath.Join(dir, "kustomization.yaml"), &k); err != nil {
		return kustomization{}, nil, "", err
	}
	maps = map[string][]string{}
	for _, g := range k.ConfigMapGenerator {
		for _, l := range g.Literals {
			name, _, _ := strings.Cut(l, "=")
			maps[g.Name] = append(maps[g.Name], name)
		}
	}
	return k, maps, filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir)), nil
}

// baseUse is how the base in dir runs svc, and the config maps its
// container takes variables from; false if no workload of the base runs
// it.
func baseUse(dir, svc string) (Use, []string, bool, error) {
	k, maps, where, err := readKustomization(dir)
	if err != nil {
		return Use{}, nil, false, err
	}
	for _, r := range k.Resources {
		workloads, err := readWorkloads(filepath.Join(dir, r))
		if err != nil {
			return Use{}, nil, false, err
		}
		for _, w := range workloads {
			if w.Metadata.Name != svc || (w.Kind != "Deployment" && w.Kind != "StatefulSet") {
				continue
			}
			for _, c := range w.Spec.Template.Spec.Containers {
				if c.Name != svc {
					continue
				}
				u := Use{Where: where, Args: c.Args}
				for _, e := range c.Env {
					u.Env = append(u.Env, e.Name)
				}
				var from []string
				for _, ef := range c.EnvFrom {
					from = append(from, ef.ConfigMapRef.Name)
					u.Env = append(u.Env, maps[ef.ConfigMapRef.Name]...)
				}
				u.Env = tmaflowVars(u.Env)
				return u, from, true, nil
			}
		}
	}
	return Use{}, nil, false, nil
}

// overlayUse is base (taking variables from the config maps baseMaps)
// with the overlay in dir applied: its versions of those config maps and
// its JSON patches of svc.
func overlayUse(dir, svc string, base Use, baseMaps []string) (Use, error) {
	k, maps, where, err := readKustomization(dir)
	if err != nil {
		return Use{}, err
	}
	if !slices.Contains(k.Resources, "../../base") {
		return Use{}, fmt.Errorf("%s: an overlay not of ../../base", dir)
	}
	u := Use{Where: where, Args: slices.Clone(base.Args), Env: slices.Clone(base.Env)}
	for _, m := range baseMaps {
		u.Env = append(u.Env, maps[m]...)
	}
	for _, p := range k.Patches {
		if p.Target.Name != svc {
			continue
		}
		if err := applyPatch(&u, p.Patch); err != nil {
			return Use{}, fmt.Errorf("%s: patch of %s: %w", dir, svc, err)
		}
	}
	u.Env = tmaflowVars(u.Env)
	return u, nil
}

// applyPatch applies the JSON-patch operations on a container's args and
// env; any other operation on them is an error, so that a new kind of
// patch is not checked by mistake as nothing.
func applyPatch(u *Use, patch string) error {
	var ops []struct {
		Op    string    `yaml:"op"`
		Path  string    `yaml:"path"`
		Value yaml.Node `yaml:"value"`
	}
	if err := yaml.Unmarshal([]byte(patch), &ops); err != nil {
		return fmt.Errorf("not a JSON patch: %w", err)
	}
	for _, op := range ops {
		field, elem, err := containerField(op.Path)
		if err != nil {
			return err
		}
		if field == "" {
			continue
		}
		if op.Op != "add" && op.Op != "replace" {
			return fmt.Errorf("%s %s: only add and replace are read", op.Op, op.Path)
		}
		switch {
		case field == "args" && elem:
			var arg string
			err = op.Value.Decode(&arg)
			u.Args = append(u.Args, arg)
		case field == "args":
			err = op.Value.Decode(&u.Args)
		case field == "env":
			var vars []envVar
			if elem {
				var v envVar
				err = op.Value.Decode(&v)
				vars = []envVar{v}
			} else {
				err = op.Value.Decode(&vars)
			}
			for _, v := range vars {
				u.Env = append(u.Env, v.Name)
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return nil
}

var (
	containerPath = regexp.MustCompile(`^/spec/template/spec/containers/0/(args|env)(/-)?$`)
	// anyContainerPath is every path into a container's args or env.
	anyContainerPath = regexp.MustCompile(`^/spec/template/spec/containers/[^/]+/(args|env)(/|$)`)
)

// containerField is "args" or "env" for a path to the first container's
// args or env (elem: one element appended), "" for paths elsewhere; a
// path into them it cannot follow is an error.
func containerField(path string) (field string, elem bool, err error) {
	if m := containerPath.FindStringSubmatch(path); m != nil {
		return m[1], m[2] != "", nil
	}
	if anyContainerPath.MatchString(path) {
		return "", false, fmt.Errorf("%s: only the first container's args and env, whole or appended to, are read", path)
	}
	return "", false, nil
}

func tmaflowVars(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "TMAFLOW_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// readWorkloads reads every document of a manifest file.
func readWorkloads(path string) ([]workload, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // read only
	var out []workload
	dec := yaml.NewDecoder(f)
	for {
		var w workload
		err := dec.Decode(&w)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out = append(out, w)
	}
}

func readYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
