// Package ruler evaluates Prometheus alerting and recording rules on the
// stream: it keeps the last -window (1h) of topic-metrics in a WAL-less
// Prometheus TSDB head (open chunks on the heap, full ones memory-mapped
// from the scratch directory) and evaluates a rule group as soon as a batch
// arrives that touches a series its rules select, besides the group's
// interval tick.
//
// # Rule files
//
// Rule files are Prometheus rule files (groups, alert/record, expr, for,
// keep_firing_for, labels, annotations with templates; promtool check
// rules accepts them), one directory per tenant, as Mimir lays them out:
//
//	<rules.dir>/<tenant>/*.yml|*.yaml
//
// A tenant's rules see only that tenant's series: every selector gets a
// tenant="<tenant>" matcher added at the storage boundary, so a selector
// naming another tenant selects nothing. Alerts get the label
// tenant="<tenant>" (templates see it as $externalLabels.tenant);
// recording-rule results get it too. Files directly in rules.dir, and
// directories not named like a tenant, are errors; other files and dot
// files are ignored. -tenants limits a replica to some tenants (replicas
// shard by tenant; each reads every partition of topic-metrics).
//
// A group's interval may be sub-second (100ms). Groups without one tick
// at -evaluation.default-interval (1s).
//
// # Evaluation
//
// The selectors of each group's rules (vector and range selectors) are
// indexed by metric name when they fix it (catch-all otherwise), and then
// by the value of one more label they fix (resource_id="…" in rules
// written per device). A batch
// of topic-metrics, once in the head, triggers every group of its tenant
// with a selector matching one of its series: the group is evaluated at
// once, and what arrives during the next -evaluation.debounce (2ms) is
// coalesced into one more evaluation. Batches of series no rule selects
// evaluate nothing. An interval after its last evaluation, whatever triggered
// it, a group is evaluated on a tick, which is what ends `for` waits,
// makes absent() fire and resolves alerts whose data went stale; a group
// whose data comes at least once an interval evaluates on its data alone.
// First ticks are spread over the interval by a hash of the group, as
// Prometheus spreads its groups. At most -evaluation.concurrency groups
// evaluate at once (default one less than GOMAXPROCS, at least 1): a
// burst of groups then queues for a slot rather than for every core, and
// the goroutines that carry new batches keep a core. Evaluations run at the ruler's clock, or at a
// triggering sample's time if that is ahead by at most
// -evaluation.max-future-skew, never backwards. `for` and keep_firing_for
// are exact to the evaluation (for: 500ms fires at the first evaluation
// 500ms after the condition began).
//
// An instant selector evaluated at one time (the selectors of most alert
// conditions) reads each series' newest sample, kept per head series as
// it is committed, instead of decoding the head chunks of the whole
// lookback (5m: ~300 samples per series at 1 Hz), whenever every series
// it selects has its newest sample at or before the evaluation time; the
// answer is the one the head gives (Prometheus' PromQL test scripts pass
// through it). Range selectors, subqueries and evaluations in the past
// (restore) read the head. tmaflow_ruler_instant_selector_series_total
// counts the series of each source. A threshold rule (an instant
// selector compared with a number) is answered from the newest samples
// without the engine, labels built only for the series that cross
// (threshold.go); the engine answers whatever they cannot.
//
// Recording-rule results are appended to the head (dependent groups are
// triggered at once, up to 4 hops) and published to topic-samples as a
// sample batch (source rule, tenant header), so the labeler and persister
// store them; coming back through topic-metrics they trigger nothing
// again. Alerting rules write no ALERTS/ALERTS_FOR_STATE series:
// topic-alerts carries alert state.
//
// # Alerts
//
// Alerts are sent to every -alertmanager.url (POST /api/v2/alerts) as
// Prometheus sends them: firing alerts when they fire and again every
// -alertmanager.resend-delay, with endsAt four resend periods ahead so
// Alertmanager resolves them if the ruler disappears, and resolved alerts
// once. Each Alertmanager has a queue and a sender that posts at once
// (no batching timer); failures are counted and retried with backoff, a
// newer version of an alert replaces a queued one, and only an
// overflowing queue drops (counted).
//
// Every change of state (firing, resolved) is published to topic-alerts
// as JSON (schemas/alert.avsc: the Alertmanager alert plus state, tenant
// and fingerprint), keyed tenant NUL fingerprint, with the tenant header.
// Publishing never blocks evaluation: a queue retries failed publishes.
//
// # Start and restart
//
// At start the ruler reads topic-alerts and topic-metrics from the
// offsets of now − window (Kafka's time index, no consumer group), fills
// the head up to the partition ends, then restores alert state before it
// is ready (/-/ready): each group is evaluated silently over the last
// stretch of the window that can matter (its longest for + keep_firing_for
// plus an interval), so a pending alert keeps the activation time its data
// gives it and its `for` continues; an alert that topic-alerts says was
// firing keeps its start time and is resent at the first evaluation
// (Alertmanager sees the same alert, no new notification); one that was
// firing but no longer holds is sent resolved. Then it follows
// topic-metrics. Undecodable records go to topic-dlq (stage ruler).
//
// Rule files are reloaded on SIGHUP (Reload) and when their size or
// modification time changes (-rules.check-interval). An invalid file is
// rejected with its file:line:column error, reported once, and the rules
// in force keep running; groups that stay keep their alerts.
//
// # HTTP
//
// /metrics, /-/healthy, /-/ready, and Prometheus' GET /api/v1/rules and
// /api/v1/alerts (Grafana reads them), all tenants or the one of the
// X-Scope-OrgID header.
package ruler
