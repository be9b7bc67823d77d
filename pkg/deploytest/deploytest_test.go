package deploytest

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUses(t *testing.T) {
	uses, err := Uses("testdata/ok", "worker")
	require.NoError(t, err)
	require.Equal(t, []Use{
		{Where: "docker-compose.yml", Args: []string{"-listen-address=0.0.0.0:8080", "-queue.size=3"}, Env: []string{"TMAFLOW_KAFKA_BROKERS"}},
		{Where: "k8s/base", Args: []string{"-listen-address=0.0.0.0:8080"}, Env: []string{"TMAFLOW_KAFKA_BROKERS", "TMAFLOW_LOG_FORMAT"}},
		{Where: "overlays/prod", Args: []string{"-listen-address=0.0.0.0:8080", "-queue.size=9"}, Env: []string{"TMAFLOW_KAFKA_BROKERS", "TMAFLOW_LOG_FORMAT", "TMAFLOW_QUEUE_SIZE"}},
	}, uses)

	listed, err := Uses("testdata/ok", "listed")
	require.NoError(t, err)
	require.Equal(t, []Use{{Where: "docker-compose.yml", Args: []string{"-a=1"}, Env: []string{"TMAFLOW_LOG_LEVEL"}}}, listed, "list-form environment; not in the kustomizations")

	none, err := Uses("testdata/ok", "absent")
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = Uses("testdata/badpatch", "worker")
	require.ErrorContains(t, err, "containers/0/args/0: only the first container's args and env, whole or appended to, are read")

	_, err = Uses("testdata/missing", "worker")
	require.ErrorContains(t, err, "docker-compose.yml")
}

// flags is a service's main: the flags define registers, parsed.
func flags(define func(fs *flag.FlagSet)) Main {
	return func(args []string, stderr io.Writer) error {
		fs := flag.NewFlagSet("worker", flag.ContinueOnError)
		fs.SetOutput(stderr)
		define(fs)
		return fs.Parse(args)
	}
}

func TestProblems(t *testing.T) {
	worker := flags(func(fs *flag.FlagSet) {
		fs.String("listen-address", ":80", "where")
		fs.Int("queue.size", 1, "queue")
		fs.String("kafka.brokers", "", "brokers")
	})
	for _, tc := range []struct {
		name string
		use  Use
		main Main
		want []string
	}{
		{"all defined", Use{Args: []string{"-listen-address=:1", "-queue.size=2"}, Env: []string{"TMAFLOW_KAFKA_BROKERS", "TMAFLOW_QUEUE_SIZE"}}, worker, nil},
		{"renamed flag", Use{Args: []string{"-listen=:1"}}, worker, []string{`command line ["-listen=:1"]: flag provided but not defined: -listen`}},
		{"bad value", Use{Args: []string{"-queue.size=many"}}, worker, []string{`command line ["-queue.size=many"]: invalid value "many" for flag -queue.size: parse error`}},
		{"variable of no flag", Use{Env: []string{"TMAFLOW_KAFKA_BROKER", "TMAFLOW_QUEUE_SIZE"}}, worker, []string{"TMAFLOW_KAFKA_BROKER sets no flag"}},
		{"main fails before parsing", Use{}, func([]string, io.Writer) error { return errors.New("boom") }, []string{`command line []: boom`}},
		{"no usage printed", Use{}, func([]string, io.Writer) error { return flag.ErrHelp }, []string{"no flags in the usage:\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Problems(tc.use, tc.main))
		})
	}
}

func TestFlagNames(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("a.b", "", "one\nline two")
	fs.Bool("c", false, "a bool")
	fs.Duration("d-e", 0, "a `duration`")
	var out strings.Builder
	fs.SetOutput(&out)
	fs.PrintDefaults()
	require.Equal(t, []string{"a.b", "c", "d-e"}, FlagNames(out.String()))
}
