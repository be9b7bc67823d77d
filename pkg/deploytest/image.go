package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CheckImages fails t for every problem (see ImageProblems) of the
// images of root.
func CheckImages(t *testing.T, root string) {
	t.Helper()
	problems, err := ImageProblems(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// ImageProblems checks that root's one Dockerfile builds every service:
// each directory of services/ with a main package at its root. The
// Dockerfile must build services/$SERVICE alone (ARG SERVICE, GOWORK=off,
// no service named in it) and start a fixed exec-form ENTRYPOINT; the
// sources of each service's module and of its local replace targets must
// pass .dockerignore and be copied into the build stage; no service may
// keep a Dockerfile of its own; and every docker-compose.yml build must
// be that Dockerfile with SERVICE naming a service, the image's name
// ending in it.
func ImageProblems(root string) ([]string, error) {
	services, problems, err := imageServices(root)
	if err != nil {
		return nil, err
	}
	df, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	copied, dfProblems := df.problems()
	problems = append(problems, dfProblems...)
	ignore, err := readDockerignore(root)
	if err != nil {
		return nil, err
	}
	inputs, err := buildInputs(root, services)
	if err != nil {
		return nil, err
	}
	problems = append(problems, inputs.problems(ignore, copied)...)
	compose, err := composeBuildProblems(root, services)
	if err != nil {
		return nil, err
	}
	return append(problems, compose...), nil
}

// imageServices is the directories of root/services with a main package
// at their root (services/<name>), and the problems of services/: a
// service that is no module, a Dockerfile of a service's own.
func imageServices(root string) (services, problems []string, err error) {
	dirs, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		return nil, nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, "services", d.Name())
		p, err := build.ImportDir(dir, 0)
		if err != nil && !errors.As(err, new(*build.NoGoError)) {
			return nil, nil, fmt.Errorf("services/%s: %w", d.Name(), err)
		}
		if err != nil || p.Name != "main" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			problems = append(problems, fmt.Sprintf("services/%s: a main package but no go.mod: the Dockerfile builds services/$SERVICE as a module", d.Name()))
			continue
		}
		services = append(services, d.Name())
	}
	if len(services) == 0 {
		problems = append(problems, "services/: no directory with a main package")
	}
	err = filepath.WalkDir(filepath.Join(root, "services"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir // fixtures
			}
			return nil
		}
		name := strings.ToLower(d.Name())
		if name == "dockerfile" || strings.HasPrefix(name, "dockerfile.") || strings.HasSuffix(name, ".dockerfile") || name == "containerfile" {
			rel, _ := filepath.Rel(root, p)
			problems = append(problems, filepath.ToSlash(rel)+": a service's own Dockerfile: the root Dockerfile builds every service (--build-arg SERVICE=<name>)")
		}
		return nil
	})
	return services, problems, err
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper-cased
	args string
}

// stage is the instructions of one FROM.
type stage []instruction

type dockerfile struct {
	path   string
	stages []stage // the first holds the ARGs before the first FROM
}

func parseDockerfile(p string) (dockerfile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return dockerfile{}, err
	}
	df := dockerfile{path: p, stages: []stage{nil}}
	var cur []string
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // also between continuation lines
		}
		if cur == nil {
			start = i + 1
		}
		more := strings.HasSuffix(trimmed, `\`)
		cur = append(cur, strings.TrimSuffix(trimmed, `\`))
		if more {
			continue
		}
		cmd, args, _ := strings.Cut(strings.Join(cur, " "), " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		cur = nil
		if in.cmd == "FROM" {
			df.stages = append(df.stages, nil)
		}
		df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], in)
	}
	return df, nil
}

var (
	buildPath    = regexp.MustCompile(`services/\$(SERVICE\b|\{SERVICE\})`)
	namedService = regexp.MustCompile(`services/([A-Za-z0-9_][A-Za-z0-9_.-]*)`)
)

func (df dockerfile) problemf(in instruction, format string, args ...any) string {
	return fmt.Sprintf("%s:%d: %s: %s", filepath.Base(df.path), in.line, in.cmd, fmt.Sprintf(format, args...))
}

// problems checks the Dockerfile alone and returns the context paths its
// build stage copies before it builds.
func (df dockerfile) problems() (copied []string, problems []string) {
	name := filepath.Base(df.path)
	for _, st := range df.stages {
		for _, in := range st {
			for _, m := range namedService.FindAllStringSubmatch(in.args, -1) {
				problems = append(problems, df.problemf(in, "names services/%s: the Dockerfile is every service's (services/$SERVICE)", m[1]))
			}
		}
	}
	built := false
	var all []string // every COPY of the context, for want of a build
	for _, st := range df.stages[1:] {
		arg, gowork := false, false
		var stageCopied []string
		for _, in := range st {
			switch in.cmd {
			case "ARG":
				arg = arg || slices.ContainsFunc(strings.Fields(in.args), func(a string) bool {
					k, _, _ := strings.Cut(a, "=")
					return k == "SERVICE"
				})
			case "ENV":
				gowork = gowork || strings.Contains(in.args, "GOWORK=off")
			case "COPY", "ADD":
				stageCopied = append(stageCopied, copySources(in.args)...)
				all = append(all, copySources(in.args)...)
			case "RUN":
				if !buildPath.MatchString(in.args) {
					continue
				}
				built = true
				if !arg {
					problems = append(problems, df.problemf(in, "builds services/$SERVICE, but the stage declares no ARG SERVICE before it (it is empty)"))
				}
				if !gowork && !strings.Contains(in.args, "GOWORK=off") {
					problems = append(problems, df.problemf(in, "builds with the workspace: set GOWORK=off, so that the service's module builds alone and go.work is no build input"))
				}
				copied = append(copied, stageCopied...)
			}
		}
	}
	if !built {
		copied = all
		problems = append(problems, name+": no RUN builds services/$SERVICE (ARG SERVICE)")
	}
	last := df.stages[len(df.stages)-1]
	i := slices.IndexFunc(last, func(in instruction) bool { return in.cmd == "ENTRYPOINT" })
	if len(df.stages) < 2 || i < 0 {
		return copied, append(problems, name+": the final stage has no ENTRYPOINT")
	}
	in := last[i]
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		problems = append(problems, df.problemf(in, "%s: not the exec form (a JSON array): the runtime image has no shell", in.args))
	} else if strings.Contains(in.args, "$") {
		problems = append(problems, df.problemf(in, "%s: the exec form expands no variable: start a fixed path", in.args))
	}
	return copied, problems
}

// copySources is the context paths of a COPY or ADD: none for a copy from
// a stage or an image.
func copySources(args string) []string {
	var words []string
	if strings.HasPrefix(args, "[") {
		if json.Unmarshal([]byte(args), &words) != nil {
			return nil
		}
	} else {
		words = strings.Fields(args)
	}
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		if strings.HasPrefix(words[0], "--from=") {
			return nil
		}
		words = words[1:]
	}
	if len(words) < 2 {
		return nil
	}
	var out []string
	for _, w := range words[:len(words)-1] {
		out = append(out, strings.Trim(path.Clean("/"+w), "/"))
	}
	return out
}

// copiedBy reports whether a COPY of one of sources brings the context
// path p.
func copiedBy(p string, sources []string) bool {
	parts := strings.Split(p, "/")
	for _, s := range sources {
		if s == "" {
			return true
		}
		for k := 1; k <= len(parts); k++ {
			if ok, _ := path.Match(s, strings.Join(parts[:k], "/")); ok {
				return true
			}
		}
	}
	return false
}

// ignorePattern is one line of a .dockerignore.
type ignorePattern struct {
	re        *regexp.Regexp
	exclusion bool // '!': brings the path back
}

// dockerignore is what Docker leaves out of the build context.
type dockerignore []ignorePattern

// readDockerignore reads the Dockerfile's own ignore file
// (Dockerfile.dockerignore) or else .dockerignore; none leaves nothing
// out.
func readDockerignore(root string) (dockerignore, error) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile.dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(root, ".dockerignore"))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if line[0] == '!' {
			p.exclusion, line = true, strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean(line), "/")
		if line == "." || line == "" {
			continue
		}
		p.re = regexp.MustCompile("^" + ignoreRegexp(line) + "$")
		out = append(out, p)
	}
	return out, nil
}

// ignoreRegexp is a .dockerignore pattern as a regular expression, as
// github.com/moby/patternmatcher compiles it: '*' and '?' stop at '/',
// "**" crosses directories.
func ignoreRegexp(pattern string) string {
	var re strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			i++
			if i+1 < len(pattern) && pattern[i+1] == '/' {
				i++
			}
			if i+1 == len(pattern) {
				re.WriteString(".*")
			} else {
				re.WriteString("(.*/)?")
			}
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		case c == '\\' && i+1 < len(pattern):
			i++
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case strings.IndexByte(".+()|{}$", c) >= 0:
			re.WriteString(`\` + string(c))
		default:
			re.WriteByte(c) // character classes pass through
		}
	}
	return re.String()
}

// ignored reports whether Docker leaves the context path p out: the last
// pattern matching it or one of its parent directories decides.
func (d dockerignore) ignored(p string) bool {
	parts := strings.Split(p, "/")
	out := false
	for _, pat := range d {
		for k := len(parts); k >= 1; k-- {
			if pat.re.MatchString(strings.Join(parts[:k], "/")) {
				out = !pat.exclusion
				break
			}
		}
	}
	return out
}

// inputs is the build inputs (context paths) of each module directory a
// service's build reads, and the services reading it.
type inputs struct {
	order   []string            // module directories, as first read
	files   map[string][]string // module directory → its build inputs
	readers map[string][]string // module directory → services/<name> reading it
	outside []string            // problems: replace directives out of the context
}

// buildInputs is what building each of services reads: its module and
// the modules of its local replace directives, each the go.mod, go.sum,
// non-test Go files and embedded files of its packages.
func buildInputs(root string, services []string) (inputs, error) {
	in := inputs{files: map[string][]string{}, readers: map[string][]string{}}
	for _, s := range services {
		svc := "services/" + s
		dirs, err := replaceDirs(root, svc)
		if err != nil {
			return inputs{}, err
		}
		for _, dir := range append([]string{svc}, dirs...) {
			if strings.HasPrefix(dir, "../") || dir == ".." {
				in.outside = append(in.outside, fmt.Sprintf("%s/go.mod: replace by %s, outside the build context", svc, dir))
				continue
			}
			if _, ok := in.files[dir]; !ok {
				files, err := moduleInputs(root, dir)
				if err != nil {
					return inputs{}, err
				}
				in.order = append(in.order, dir)
				in.files[dir] = files
			}
			in.readers[dir] = append(in.readers[dir], svc)
		}
	}
	return in, nil
}

// problems is the inputs ignore leaves out of the context or no COPY of
// copied brings, grouped by module directory.
func (in inputs) problems(ignore dockerignore, copied []string) []string {
	out := in.outside
	for _, dir := range in.order {
		var left, uncopied []string
		for _, f := range in.files[dir] {
			if ignore.ignored(f) {
				left = append(left, f)
			} else if !copiedBy(f, copied) {
				uncopied = append(uncopied, f)
			}
		}
		readers := strings.Join(in.readers[dir], ", ")
		if len(left) > 0 {
			out = append(out, fmt.Sprintf("%s: .dockerignore leaves out %d build inputs of %s (%s)", dir, len(left), readers, few(left)))
		}
		if len(uncopied) > 0 {
			out = append(out, fmt.Sprintf("%s: no COPY of the build stage brings %d build inputs of %s (%s)", dir, len(uncopied), readers, few(uncopied)))
		}
	}
	return out
}

func few(paths []string) string {
	if len(paths) > 3 {
		return strings.Join(paths[:3], ", ") + ", …"
	}
	return strings.Join(paths, ", ")
}

var replaceLine = regexp.MustCompile(`^\s*(?:replace\s+)?\S+(?:\s+\S+)?\s+=>\s+(\S+)\s*$`)

// replaceDirs is the directories (relative to root, slash-separated) of
// the local replace directives of the module in dir.
func replaceDirs(root, dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, dir, "go.mod"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "//")
		m := replaceLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "./") && !strings.HasPrefix(m[1], "../") {
			continue // no replace, or by a module version
		}
		out = append(out, path.Clean(path.Join(dir, m[1])))
	}
	return out, nil
}

// moduleInputs is the build inputs of the module in root/dir: go.mod,
// go.sum, and of every package (not in testdata, _ or . directories, nor
// in a nested module) its non-test Go files and embedded files.
func moduleInputs(root, dir string) ([]string, error) {
	var out []string
	add := func(p string) {
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
	}
	modDir := filepath.Join(root, dir)
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if p == filepath.Join(modDir, d.Name()) && (d.Name() == "go.mod" || d.Name() == "go.sum") {
				add(p)
			}
			return nil
		}
		if p != modDir {
			if n := d.Name(); n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		pkg, err := build.ImportDir(p, 0)
		if errors.As(err, new(*build.NoGoError)) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range slices.Concat(pkg.GoFiles, pkg.CgoFiles, pkg.IgnoredGoFiles, pkg.SFiles) {
			if !strings.HasSuffix(f, "_test.go") {
				add(filepath.Join(p, f))
			}
		}
		for _, pat := range pkg.EmbedPatterns {
			matches, err := filepath.Glob(filepath.Join(p, filepath.FromSlash(strings.TrimPrefix(pat, "all:"))))
			if err != nil {
				return err
			}
			for _, m := range matches {
				if err := filepath.WalkDir(m, func(e string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						add(e)
					}
					return err
				}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	slices.Sort(out)
	return slices.Compact(out), err
}

// composeBuildProblems checks every build of root's docker-compose.yml:
// the root Dockerfile, from the root, with a build arg SERVICE naming one
// of services, and an image whose name ends in it.
func composeBuildProblems(root string, services []string) ([]string, error) {
	var doc struct {
		Services map[string]struct {
			Build any    `yaml:"build"`
			Image string `yaml:"image"`
		} `yaml:"services"`
	}
	if err := readYAML(filepath.Join(root, "docker-compose.yml"), &doc); err != nil {
		return nil, err
	}
	var names []string
	for name := range doc.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []string
	for _, name := range names {
		s := doc.Services[name]
		if s.Build == nil {
			continue
		}
		where := "docker-compose.yml: services." + name + ".build"
		b, ok := s.Build.(map[string]any)
		if !ok {
			b = map[string]any{"context": s.Build}
		}
		context, _ := b["context"].(string)
		dockerfile, _ := b["dockerfile"].(string)
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if f := filepath.Join(context, dockerfile); f != "Dockerfile" {
			out = append(out, fmt.Sprintf("%s: builds %s, not the root Dockerfile (context ., dockerfile Dockerfile)", where, f))
		}
		svc, ok := buildArg(b["args"], "SERVICE")
		switch {
		case !ok:
			out = append(out, where+": no args.SERVICE: the Dockerfile builds services/$SERVICE")
		case !slices.Contains(services, svc):
			out = append(out, fmt.Sprintf("%s: args.SERVICE %q is none of the services (%s)", where, svc, strings.Join(services, ", ")))
		case s.Image != "" && imageName(s.Image) != svc:
			out = append(out, fmt.Sprintf("docker-compose.yml: services.%s: image %s holds %s", name, s.Image, svc))
		}
	}
	return out, nil
}

// buildArg is the value of compose build args (a map or a list of
// NAME=value) for name.
func buildArg(args any, name string) (string, bool) {
	switch args := args.(type) {
	case map[string]any:
		v, ok := args[name]
		if !ok || v == nil {
			return "", false
		}
		return fmt.Sprint(v), true
	case []any:
		for _, kv := range args {
			if k, v, ok := strings.Cut(fmt.Sprint(kv), "="); ok && k == name {
				return v, true
			}
		}
	}
	return "", false
}

// imageName is the last element of an image reference's name, without
// tag or digest (registry.example.com:5000/tmaflow/monitor:dev → monitor).
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	name := path.Base(ref)
	name, _, _ = strings.Cut(name, ":")
	return name
}
