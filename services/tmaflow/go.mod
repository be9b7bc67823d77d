module github.com/tmaflow/tmaflow/services/tmaflow

go 1.26

require (
	github.com/tmaflow/tmaflow/pkg v0.0.0
	github.com/tmaflow/tmaflow/schemas v0.0.0
)

replace (
	github.com/tmaflow/tmaflow/pkg => ../../pkg
	github.com/tmaflow/tmaflow/schemas => ../../schemas
)

require github.com/tmaflow/tmaflow/services/monitor v0.0.0

replace github.com/tmaflow/tmaflow/services/monitor => ../monitor
