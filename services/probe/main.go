package main

import (
	"github.com/tmaflow/tmaflow/pkg/service"
)

func main() { _ = service.NewRegistry() }
