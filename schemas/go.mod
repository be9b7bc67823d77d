module github.com/tmaflow/tmaflow/schemas

go 1.26
