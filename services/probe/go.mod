module github.com/tmaflow/tmaflow/services/probe

go 1.26.0

require (
	github.com/tmaflow/tmaflow/pkg v0.0.0
	github.com/tmaflow/tmaflow/schemas v0.0.0
)

replace (
	github.com/tmaflow/tmaflow/pkg => ../../pkg
	github.com/tmaflow/tmaflow/schemas => ../../schemas
)
