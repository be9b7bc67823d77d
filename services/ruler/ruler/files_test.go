package ruler

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// TestPromtoolAcceptsRuleFiles checks the shipped rule files with the real
// promtool, and that the ruler loads the same files.
func TestPromtoolAcceptsRuleFiles(t *testing.T) {
	promtool := peertest.Binary(t, "promtool")
	files := []string{"testdata/rules/demo/rules.yml", "../../../examples/rules/demo/rules.yml"}
	for _, f := range files {
		out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
		require.NoError(t, err, "promtool check rules %s: %s", f, out)
	}
	out, err := exec.Command(promtool, "check", "rules", "testdata/broken/rules.yml").CombinedOutput()
	require.Error(t, err, "promtool refuses the broken file too: %s", out)

	ts := newTestService(t, testConfig("testdata/rules"), time.Now)
	g := ts.group(t, "demo")
	require.Len(t, g.group.Rules(), 6)
	require.Equal(t, time.Second, g.interval)
	example, err := os.ReadFile("../../../examples/rules/demo/rules.yml")
	require.NoError(t, err)
	fixture, err := os.ReadFile("testdata/rules/demo/rules.yml")
	require.NoError(t, err)
	require.Equal(t, string(example), string(fixture), "the example and the fixture are the same file")
}

// TestRulesLayout checks which directory layouts are refused.
func TestRulesLayout(t *testing.T) {
	const valid = "groups:\n- name: g\n  rules:\n  - {record: x, expr: vector(1)}\n"
	cases := []struct {
		name  string
		setup func(dir string)
		err   string
	}{
		{"file outside a tenant directory", func(dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(valid), 0o644))
		}, "outside a tenant directory"},
		{"broken expression names file and line", func(dir string) {
			writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up > > 1\n")
		}, "acme/rules.yml: 5:11: group \"g\""},
		{"two groups of one name", func(dir string) {
			writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n")
		}, "groupname: \"g\" is repeated"},
		{"unknown field", func(dir string) {
			writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  evaluation: 1s\n  rules: []\n")
		}, "field evaluation not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			_, err := New(testConfig(dir), Options{Publisher: newCapturePublisher(), Source: newChanSource()})
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// TestReloadKeepsRulesOnError reloads a broken file (on signal and on
// change): the error names file and line and the old rules keep
// evaluating; a fixed file is then loaded, keeping the state of groups
// that stay.
func TestReloadKeepsRulesOnError(t *testing.T) {
	dir := t.TempDir()
	path := writeRules(t, dir, "acme", "rules.yml", `groups:
- name: cpu
  rules:
  - alert: HighCPU
    expr: cpu_usage_percent > 90
`)
	ts := newTestService(t, testConfig(dir), time.Now)
	ts.start(t)
	ts.src.live <- record("acme", time.Now(), "cpu_usage_percent", 95)
	require.Eventually(t, func() bool { return len(ts.pub.alerts(t)) == 1 }, 10*time.Second, time.Millisecond)
	before := ts.rules.Load()

	require.NoError(t, os.WriteFile(path, []byte("groups:\n- name: cpu\n  rules:\n  - alert: HighCPU\n    expr: cpu_usage_percent > > 90\n"), 0o644))
	err := ts.Reload()
	require.ErrorContains(t, err, path+": 5:11:")
	require.ErrorContains(t, err, "the rules in force stay")
	require.NoError(t, ts.reload(triggerFile, false), "a broken file is reported once, not at every check")
	require.Same(t, before.groups[0], ts.rules.Load().groups[0], "the old group still runs")
	g := before.groups[0]
	n := ts.evaluations("acme", g, triggerData)
	ts.src.live <- record("acme", time.Now(), "cpu_usage_percent", 96)
	require.Eventually(t, func() bool { return ts.evaluations("acme", g, triggerData) > n }, 10*time.Second, time.Millisecond, "the old rules keep evaluating")

	// A fixed file with a second rule, noticed by the change check.
	require.NoError(t, os.WriteFile(path, []byte(`groups:
- name: cpu
  rules:
  - alert: HighCPU
    expr: cpu_usage_percent > 90
  - alert: VeryHighCPU
    expr: cpu_usage_percent > 99
`), 0o644))
	// Some file systems keep mtimes in seconds: make the change visible.
	require.NoError(t, os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute)))
	require.NoError(t, ts.reload(triggerFile, false))
	require.Same(t, g, ts.rules.Load().groups[0], "a change is loaded once it has settled, not mid-write")
	require.NoError(t, ts.reload(triggerFile, false))
	after := ts.group(t, "acme")
	require.NotSame(t, g, after)
	require.Len(t, after.group.Rules(), 2)
	moved := after.group.AlertingRules()[0].ActiveAlerts()
	require.Len(t, moved, 1, "the alert state moved over")
	require.Equal(t, rules.StateFiring, moved[0].State)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, ts.pub.alerts(t), 1, "no second firing for the reload")
	require.True(t, strings.HasSuffix(after.file, "rules.yml"))
}

// Kubernetes mounts a ConfigMap as symlinks (demo → ..data/demo,
// rules.yml → ..data/rules.yml): the tenant directory is followed.
func TestRulesThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_11_23")
	writeRules(t, data, "demo", "rules.yml", "groups:\n- name: g\n  rules:\n  - {record: x, expr: vector(1)}\n")
	require.NoError(t, os.Symlink(filepath.Join(data, "demo"), filepath.Join(dir, "demo")))
	cfg := testConfig(dir)
	cfg.ScratchDir = filepath.Join(t.TempDir(), "scratch")
	ts := newTestService(t, cfg, time.Now)
	ts.group(t, "demo")
	entries, err := os.ReadDir(cfg.ScratchDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the window's chunks live in the scratch dir")
}
