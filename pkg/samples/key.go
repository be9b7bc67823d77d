package samples

// MetricsKey is the record key of a topic-metrics batch: its tenant and
// the resource its series belong to, joined by a 0 byte (which label
// values do not hold in practice), so all series of one resource of one
// tenant land in one partition and are appended in order.
func MetricsKey(tenant, resource string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(resource))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, resource...)
}
