package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/tmaflow/tmaflow/pkg/deploytest"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// TestDeployments: the command lines and TMAFLOW_* variables that
// docker-compose.yml and deploy/k8s give the ruler are its flags.
func TestDeployments(t *testing.T) {
	deploytest.CheckService(t, "../..", "ruler", func(args []string, stderr io.Writer) error {
		return runMain(context.Background(), args, stderr)
	})
}

// runMain runs the command as main does, with ctx and stderr.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	return module.Main(ctx, ruler.Module(), args, strings.NewReader(""), io.Discard, stderr)
}
