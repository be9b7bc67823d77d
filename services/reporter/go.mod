module github.com/tmaflow/tmaflow/services/reporter

go 1.26.0

require (
	github.com/tmaflow/tmaflow/pkg v0.0.0
	github.com/tmaflow/tmaflow/schemas v0.0.0
)

require (
	github.com/prometheus/client_golang v1.24.1 // indirect
	github.com/prometheus/common v0.71.0 // indirect
	github.com/prometheus/prometheus v0.315.0 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.2 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/text v0.43.0 // indirect
)

replace (
	github.com/tmaflow/tmaflow/pkg => ../../pkg
	github.com/tmaflow/tmaflow/schemas => ../../schemas
)
