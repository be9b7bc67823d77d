package main

import (
	"context"
	"io"
	"testing"

	"github.com/tmaflow/tmaflow/pkg/deploytest"
)

// TestDeployments: the command lines and TMAFLOW_* variables that
// docker-compose.yml and deploy/k8s give the ruler are its flags.
func TestDeployments(t *testing.T) {
	deploytest.CheckService(t, "../..", "ruler", func(args []string, stderr io.Writer) error {
		return runMain(context.Background(), args, stderr)
	})
}
