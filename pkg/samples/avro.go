package samples

// Fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the Parsing
// Canonical Form of schemas/sample_batch.avsc. It is a constant rather than
// computed so encoding needs no schema at run time; a test proves it equals
// goavro's fingerprint of the embedded schema, so a schema change cannot go
// unnoticed.
const Fingerprint uint64 = 0x900370fc32bb9dac

// HeaderLen is the length of the single-object header: C3 01 and the
// 8-byte little-endian fingerprint.
const HeaderLen = 10

// metricTypeAt maps an enum index of io.tmaflow.MetricType to its symbol.
func metricTypeAt(i int64) (MetricType, bool) {
	switch i {
	case 0:
		return Unknown, true
	case 1:
		return Counter, true
	case 2:
		return Gauge, true
	case 3:
		return Histogram, true
	case 4:
		return GaugeHistogram, true
	case 5:
		return Summary, true
	case 6:
		return Info, true
	case 7:
		return StateSet, true
	}
	return "", false
}

// metricTypeIndex is the inverse of metricTypeAt. Types outside the enum
// (including "") encode as UNKNOWN, the Prometheus reading of a type it
// does not know, so Encode needs no error path.
func metricTypeIndex(t MetricType) int64 {
	switch t {
	case Counter:
		return 1
	case Gauge:
		return 2
	case Histogram:
		return 3
	case GaugeHistogram:
		return 4
	case Summary:
		return 5
	case Info:
		return 6
	case StateSet:
		return 7
	}
	return 0
}

// Valid reports whether t is a symbol of the Avro enum.
func (t MetricType) Valid() bool {
	return t == Unknown || metricTypeIndex(t) != 0
}
