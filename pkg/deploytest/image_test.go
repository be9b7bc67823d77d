package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImages: the repository's one Dockerfile builds every service.
func TestImages(t *testing.T) {
	CheckImages(t, "../..")
}

// imageCase is an edit of testdata/images/repo and the problems
// ImageProblems then reports (testdata/images/cases.yaml).
type imageCase struct {
	Name    string   `yaml:"name"`
	File    string   `yaml:"file"`
	Content *string  `yaml:"content"` // the file's content
	Old     string   `yaml:"old"`     // else its first old
	New     string   `yaml:"new"`     // becomes new
	Want    []string `yaml:"want"`
}

func TestImageProblems(t *testing.T) {
	var cases []imageCase
	require.NoError(t, readYAML("testdata/images/cases.yaml", &cases))
	require.NotEmpty(t, cases)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.CopyFS(root, os.DirFS("testdata/images/repo")))
			if tc.File != "" {
				p := filepath.Join(root, filepath.FromSlash(tc.File))
				content := tc.Content
				if content == nil {
					b, err := os.ReadFile(p)
					require.NoError(t, err)
					require.Contains(t, string(b), tc.Old)
					edited := strings.Replace(string(b), tc.Old, tc.New, 1)
					content = &edited
				}
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte(*content), 0o644))
			}
			problems, err := ImageProblems(root)
			require.NoError(t, err)
			require.Len(t, problems, len(tc.Want), "%q", problems)
			for i, w := range tc.Want {
				require.Contains(t, problems[i], w)
			}
		})
	}
	_, err := ImageProblems("testdata/missing")
	require.Error(t, err)
}

func TestDockerignore(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, ".dockerignore"), []byte(
		"# comment\n*\n!pkg/\n!/services\n**/*_test.go\n**/testdata/\nservices/*/data/\n!pkg/keep/**/*_test.go\npkg/a?.go\n"), 0o644))
	ignore, err := readDockerignore(root)
	require.NoError(t, err)
	for p, want := range map[string]bool{
		"go.work":                     true,
		"docs/deploy.md":              true,
		"pkg/go.mod":                  false,
		"pkg/x/x.go":                  false,
		"pkg/x/x_test.go":             true,
		"x_test.go":                   true,
		"pkg/keep/deep/y_test.go":     false,
		"pkg/x/testdata/a.json":       true,
		"services/monitor/main.go":    false,
		"services/monitor/data/f":     true,
		"services/monitor/sub/data/f": false,
		"pkg/ab.go":                   true,
		"pkg/abc.go":                  false,
	} {
		require.Equal(t, want, ignore.ignored(p), p)
	}
	none, err := readDockerignore(filepath.Join(root, "none"))
	require.NoError(t, err)
	require.False(t, none.ignored("anything"))
}
