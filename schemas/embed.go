// Package schemas holds the wire schemas of tmaflow's topics and embeds
// them, so code and tests use the very files that document the contracts.
package schemas

import "embed"

// File names inside FS.
const (
	TMAMessageFile  = "tma-m.schema.json"
	SampleBatchFile = "sample_batch.avsc"
	AlertFile       = "alert.avsc"
	ReportFile      = "report.schema.json"
)

// TMAMessageSchemaID is the $id of the TMA message JSON Schema; JSON Schema
// compilers resolve references against it.
const TMAMessageSchemaID = "https://tmaflow.io/schemas/tma-m.schema.json"

// ReportSchemaID is the $id of the topic-reports document JSON Schema.
const ReportSchemaID = "https://tmaflow.io/schemas/report.schema.json"

// FS holds every schema file.
//
//go:embed tma-m.schema.json sample_batch.avsc alert.avsc report.schema.json
var FS embed.FS

// Strings, not byte slices, so no caller can modify the shared copy.
var (
	//go:embed tma-m.schema.json
	tmaMessageJSONSchema string
	//go:embed sample_batch.avsc
	sampleBatchAvsc string
	//go:embed alert.avsc
	alertAvsc string
	//go:embed report.schema.json
	reportJSONSchema string
)

// TMAMessageJSONSchema returns the JSON Schema (draft 2020-12) of one TMA
// message, tma-m_schema_0_4.
func TMAMessageJSONSchema() []byte { return []byte(tmaMessageJSONSchema) }

// SampleBatchAvsc returns the Avro schema of io.tmaflow.SampleBatch.
func SampleBatchAvsc() string { return sampleBatchAvsc }

// AlertAvsc returns the Avro schema of io.tmaflow.Alert.
func AlertAvsc() string { return alertAvsc }

// ReportJSONSchema returns the JSON Schema (draft 2020-12) of a report
// document, the value of topic-reports records.
func ReportJSONSchema() []byte { return []byte(reportJSONSchema) }
