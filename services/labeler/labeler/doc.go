// Package labeler turns what ingest produced into named, labelled series:
// it consumes topic-monitor (TMA JSON) and topic-samples (Avro sample
// batches), adds context from the registry file and publishes enriched
// sample batches to topic-metrics.
//
// # TMA messages
//
// Every data item of a message becomes one series (items of one
// description are merged) with a sample per observation; observation
// times are read with tma.Time (s, ms, µs or ns by magnitude) and stored
// in milliseconds.
//
//	__name__      the description's metric name: its name, the unit as a
//	              suffix, _total for counters, _event for events
//	              (cpu_usage + % → cpu_usage_percent, bytes_sent + B as
//	              counter → bytes_sent_bytes_total, restart → restart_event),
//	              or the description's explicit metric
//	resource      the resource's name, and its extra labels (site, owner …)
//	resource_id   always
//	probe         the probe's name
//	tenant        the record's tenant
//
// The name follows the data item's type, not only the description's: TMA
// probes send a measurement and an event under one descriptionId (the
// reference demo does), so an event of a measurement description goes to
// <name>_event (cpu_usage_percent_event) and a measurement of an event
// description to the name without _event, both gauges; otherwise the pair
// would share a series and one value of each timestamp would be refused.
//
// Events are samples of their own series, <name>_event, whose value is the
// event's value (1 for "happened" by TMA convention): count them with
// count_over_time(restart_event[1h]), show them as Grafana annotations.
// Their metadata type is gauge; measurements are gauges unless the
// description says kind: counter.
//
// Ids the registry does not know still flow: an unknown description is
// named tma_measurement or tma_event with a description_id label, an
// unknown probe gives probe_id instead of probe, an unknown resource has
// only resource_id. Each such observation is counted in
// tmaflow_labeler_unknown_id_observations_total{kind}. Once the registry
// learns an id the series' labels change, so it becomes a new series.
//
// The tenant is the record's tenant header (set by the authenticating
// monitor or bridge); records without one (a TMA probe writing to Kafka
// directly) get the registry probe's tenant, else "default".
//
// # Sample batches
//
// Labelled input keeps its labels. A tenant label other than the record's
// tenant (header, else the batch's) is renamed exported_tenant and the
// record's tenant set: senders cannot pick their tenant.
//
// # Label rules
//
// The registry's label_rules are Prometheus relabel_configs, applied in
// order to every series of both inputs. Besides the series' labels they
// read __mqtt_topic__ (the mqtt-topic header), __source__, __tenant__,
// and for TMA series __resource_type__ and __resource_address__; like all
// __ labels but __name__ these are removed afterwards, and the tenant label
// is reset. Series dropped by keep/drop rules are counted in
// tmaflow_labeler_dropped_series_total{reason="label_rule"}, series left
// without a name or with a repeated label name in {reason="invalid"}.
//
// # Output
//
// Series are grouped by resource: the value of resource_id, else resource,
// instance, job, or the metric name. Each group is one batch, keyed
// tenant NUL name=value (samples.MetricsKey), so all series of one
// resource are in one partition, in order. Records carry the tenant and
// received-at headers. The consumed record is acknowledged (its offset
// committed) only after the broker acknowledged every batch made from it;
// records that cannot be decoded go to topic-dlq with the reason.
//
// # Registry
//
// The registry file is validated at start (every problem, with file, line
// and field), and reloaded on SIGHUP (Reload) and when its content
// changes. A record is mapped with one registry from start to end; a
// failed reload keeps the registry in force. GET /registry shows the
// registry in force (probe secret hashes left out) and the last failed
// reload.
package labeler
