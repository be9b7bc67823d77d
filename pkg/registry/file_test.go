package registry

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

const (
	bcryptOne   = "$2a$04$Psij8yunQ9Ap4O/Hif0cWewJenF.rugkPvyNEQVwPm9VrU.GpuDC2"
	argon2idTwo = "$argon2id$v=19$m=1024,t=1,p=1$S7GMtnJ4azv8qfaz61u0vg$fcOLg+RuyHMF4faea+V0IhiZpi/HlmX/OVhUNMNU1LM"
)

func TestLoadValid(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "valid.yaml"))
	require.NoError(t, err)
	require.Equal(t, &File{
		Probes: []Probe{
			{ID: 1, Name: "probe-one", Tenant: "acme", SecretHash: bcryptOne},
			{ID: 2, Name: "probe-two", Tenant: "default", SecretHash: argon2idTwo},
		},
		Resources: []Resource{
			{ID: 8, Name: "edge-node-1", Type: "host", Address: "10.0.0.8", Labels: map[string]string{"site": "lab", "rack": "3"}},
			{ID: 9, Name: "edge-node-2"},
		},
		Descriptions: []Description{
			{ID: 27, Name: "cpu_usage", Unit: "percent", Type: tma.Measurement, Kind: KindGauge, Metric: "cpu_usage_percent"},
			{ID: 28, Name: "restart", Type: tma.Event, Metric: "restart_event"},
		},
	}, f)
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "probes: []\n", "probes:\n"} {
		f, err := Parse("empty.yaml", []byte(in))
		require.NoError(t, err, in)
		require.Empty(t, f.Probes, in)
	}
}

func TestLoadErrors(t *testing.T) {
	type want struct {
		line, col int
		field     string
		msg       string
	}
	tests := []struct {
		file string
		want []want
	}{
		{"unknown_key.yaml", []want{
			{5, 5, "probes[0].password", "unknown field"},
			{6, 1, "sensors", "unknown field"},
		}},
		{"duplicates.yaml", []want{
			{5, 9, "probes[1].id", "duplicate id 1 (first at probes[0], line 2)"},
			{6, 11, "probes[1].name", `duplicate name "probe-one" (first at probes[0], line 3)`},
			{10, 20, "descriptions[1].name", `duplicate name "cpu" (first at descriptions[0], line 9)`},
		}},
		{"bad_values.yaml", []want{
			{2, 9, "probes[0].id", `want an integer >= 0, got "-3"`},
			{3, 11, "probes[0].name", "must not be a number (HTTP Basic accepts ids and names alike)"},
			{4, 18, "probes[0].secret_hash", "unknown hash format: want bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$)"},
			{7, 18, "probes[1].secret_hash", "argon2id hash: t=0 p=1 out of range"},
			{8, 5, "probes[2].id", "missing"},
			{8, 5, "probes[2].secret_hash", "missing"},
			{9, 13, "probes[2].tenant", `must not be empty (leave it out for "default")`},
			{14, 7, "resources[0].labels.__name__", "invalid label name: want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __"},
			{15, 11, "resources[0].labels.ok", "want a string, got a list"},
			{19, 11, "descriptions[0].type", `want measurement or event, got "gauge"`},
			{20, 9, "descriptions[1].id", `want an integer >= 0, got scalar "two"`},
		}},
		{"syntax.yaml", []want{
			{5, 0, "", "mapping values are not allowed in this context"},
		}},
		{"wrong_shape.yaml", []want{
			{2, 3, "probes", "want a list, got a mapping"},
			{3, 13, "resources[0]", `want a mapping, got scalar "1"`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, err := Load(path)
			require.Error(t, err)
			require.Contains(t, err.Error(), "read registry "+path+": ")
			var list ErrorList
			require.True(t, errors.As(err, &list), "%T", err)
			got := make([]want, len(list))
			for i, e := range list {
				require.Equal(t, path, e.File)
				got[i] = want{e.Line, e.Column, e.Field, e.Msg}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestErrorString(t *testing.T) {
	require.Equal(t, "r.yaml:3:5: probes[0].id: missing", (&Error{File: "r.yaml", Line: 3, Column: 5, Field: "probes[0].id", Msg: "missing"}).Error())
	require.Equal(t, "r.yaml:3: bad", (&Error{File: "r.yaml", Line: 3, Msg: "bad"}).Error())
}
