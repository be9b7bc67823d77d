package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/tmaflow/tmaflow/pkg/deploytest"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

// TestDeployments: the command lines and TMAFLOW_* variables that
// docker-compose.yml and deploy/k8s give the monitor are its flags.
func TestDeployments(t *testing.T) {
	deploytest.CheckService(t, "../..", "monitor", func(args []string, stderr io.Writer) error {
		return runMain(context.Background(), args, strings.NewReader(""), io.Discard, stderr)
	})
}

// runMain runs the command as main does, with ctx and the given streams.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return module.Main(ctx, monitor.Module(), args, stdin, stdout, stderr)
}
