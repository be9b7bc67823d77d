# tmaflow — build, run, test, bench.
GO        ?= go
BIN       := bin
DATA_DIR  ?= data
SERVICES  := monitor labeler persister ruler bridge reporter probe tmaflow
FUZZTIME  ?= 200000x
BENCH_DURATION ?= 10s
BENCH_CONCURRENCY ?= 16,64,256
BENCH_PIPELINE_DURATION ?= 30s

.PHONY: all build run test vet fmt-check modules-check fuzz bench-ingest bench-pipeline bench-alert bench-soak clean

all: build

build:
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do \
	  echo "go build $$s"; \
	  (cd services/$$s && $(GO) build -o ../../$(BIN)/$$s .) || exit 1; \
	done

# The all-in-one on the embedded Kafka broker (127.0.0.1:9092; BUS=nats for
# the embedded NATS JetStream instead): monitor on 127.0.0.1:8080, query
# API on 127.0.0.1:9090, ruler on 127.0.0.1:9094, MQTT broker on
# 127.0.0.1:1883 (bridge ops on 127.0.0.1:8083), report pages on
# http://127.0.0.1:9095/reports; demo probe credentials from
# examples/registry.yaml (probes that send no credentials, as the TMA demo
# probes, land in tenant demo: loopback only), rules from
# examples/rules/<tenant>/, the MQTT mapping from examples/mqtt/mapping.yaml,
# reports from examples/reports/<tenant>/. Alerts go to topic-alerts, to
# MQTT subscribers, and to Alertmanager with
# ALERTMANAGER_URL=http://127.0.0.1:9093.
ALERTMANAGER_URL ?=
BUS ?= kafka
run: build
	$(BIN)/tmaflow -target=all -bus=$(BUS) -data-dir=$(DATA_DIR) \
	  -registry=examples/registry.yaml \
	  -monitor.auth.anonymous-tenant=demo \
	  -ruler.rules.dir=examples/rules \
	  -bridge.mapping=examples/mqtt/mapping.yaml \
	  -reporter.reports.dir=examples/reports \
	  $(if $(ALERTMANAGER_URL),-ruler.alertmanager.url=$(ALERTMANAGER_URL))

test: fmt-check vet modules-check
	$(GO) test -race -count=1 -timeout=30m work
	$(MAKE) fuzz

# Every module builds on its own (GOWORK=off, through its replace
# directives), so a requirement missing from a go.mod shows here and not
# in a user's build. (Not go mod tidy -diff: that downloads the test
# dependencies of every dependency, 2 GB from an empty module cache.)
MODULES := pkg schemas $(addprefix services/,$(SERVICES)) tools/bench
modules-check:
	@for m in $(MODULES); do \
	  (cd $$m && GOWORK=off $(GO) build ./...) || { echo "$$m: does not build with GOWORK=off (cd $$m && GOWORK=off go mod tidy)"; exit 1; }; \
	done

vet:
	$(GO) vet work

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Short coverage-guided runs of the decoders' fuzz targets (TMA JSON,
# remote write, Prometheus text, report files, the probe's queue segments,
# MQTT payloads, Avro sample batches, NATS headers), counted in
# executions (a -fuzztime in seconds trips golang/go#75804 now and then);
# the seed corpus in pkg/tma/testdata/fuzz runs in every `go test`.
fuzz:
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./tma
	cd services/monitor && $(GO) test -run='^$$' -fuzz=FuzzDecodeRemoteWrite -fuzztime=$(FUZZTIME) ./monitor
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParseText -fuzztime=$(FUZZTIME) ./ingest
	cd services/reporter && $(GO) test -run='^$$' -fuzz=FuzzParseFile -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s ./reporter
	cd services/probe && $(GO) test -run='^$$' -fuzz=FuzzScan -fuzztime=$(FUZZTIME) ./internal/queue
	cd services/bridge && $(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./bridge
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./samples
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzFromNATS -fuzztime=$(FUZZTIME) ./bus/nats

# Load against tmaflow (embedded broker, auth on) and, at the same
# concurrencies, against a no-op handler (the floor); then p99 at half the
# best rate.
bench-ingest:
	cd tools/bench && $(GO) run ./cmd/tmaload -duration=$(BENCH_DURATION) -concurrency=$(BENCH_CONCURRENCY)

# TMA messages through monitor → labeler → persister of a tmaflow process
# (embedded broker, auth on) at the highest rate whose consumer lag stays
# bounded, stored samples/s counted by its TSDB; then the same series
# remote-written into Debian's Prometheus, in 2,000-sample requests and in
# requests of the size of tmaflow's POSTs. About five minutes per bus.
# BUS=nats runs tmaflow on its embedded NATS JetStream server instead;
# BUS=both runs it on each in turn in the same run (same load, request
# sizes and Prometheus) and prints stored samples/s and CPU/sample side by
# side. BENCH_ARGS='-- -nats.sync-interval=2m' passes flags to tmaflow.
BENCH_ARGS ?=
bench-pipeline:
	cd tools/bench && $(GO) run ./cmd/tmapipe -bus=$(BUS) -duration=$(BENCH_PIPELINE_DURATION) $(BENCH_ARGS)

# Time from POST /monitor of a value crossing a threshold to the alert at
# an Alertmanager webhook (and on topic-alerts) for tmaflow, and from the
# remote write of the same value for Debian's Prometheus at
# evaluation_interval 1s and 100ms: 1,000 rules, one Alertmanager, a
# background load of 1,000 messages/s, CPU of each. About ten minutes.
# BUS=nats runs tmaflow on its embedded NATS JetStream server, BUS=both on
# each in turn (Prometheus runs once).
BENCH_ALERT_TRIALS ?= 200
bench-alert:
	cd tools/bench && $(GO) run ./cmd/tmaalert -bus=$(BUS) -trials=$(BENCH_ALERT_TRIALS) $(BENCH_ARGS)

# Prometheus remote write 1.0 into a tmaflow process (monitor → labeler →
# persister, embedded broker) and into Debian's Prometheus with
# --web.enable-remote-write-receiver, in the same run, for requests of 100,
# 1,000 and 10,000 samples (4 writers, 10,000 series): stored samples/s
# counted by each TSDB, the ratio, CPU per stored sample. About five minutes.
.PHONY: bench-remote-write
bench-remote-write:
	cd tools/bench && $(GO) run ./cmd/tmaremote

# The all-in-one (tmaflow -target=all, embedded broker, auth on) under a
# steady open-loop load of SOAK_RATE TMA requests/s of 20 observations
# for SOAK_DURATION, with a time-compressed retention (SOAK_RETENTION for
# the broker and the ruler's window; a SOAK_BLOCK_DURATION TSDB block for
# tmaflow and Prometheus alike, so both heads reach a steady state): RSS
# (and its file-backed part), Go heap after GC, data-dir
# bytes (kafka/, tsdb/, ruler/, per topic) and ingest p50/p99 every 10 s,
# their slopes over the last half, broker bytes per sample, acknowledged
# samples counted in the TSDB, and Debian's Prometheus at the same
# samples/s for SOAK_PROMETHEUS_DURATION (RSS comparison). The goals of
# issue 19 are checked at the end. More flags of tmaflow or the bench:
# SOAK_ARGS='-tmaflow.arg=-runtime.memory-limit-mib=512 -rules-dir=../../examples/rules'.
SOAK_DURATION ?= 15m
SOAK_RATE ?= 2000
SOAK_CONCURRENCY ?= 64
SOAK_RETENTION ?= 3m
SOAK_BLOCK_DURATION ?= 2m
SOAK_PROMETHEUS_DURATION ?= 8m
SOAK_ARGS ?=
bench-soak:
	cd tools/bench && $(GO) run ./cmd/tmasoak -duration=$(SOAK_DURATION) -rate=$(SOAK_RATE) \
	  -concurrency=$(SOAK_CONCURRENCY) -retention=$(SOAK_RETENTION) \
	  -tsdb.block-duration=$(SOAK_BLOCK_DURATION) -prometheus.duration=$(SOAK_PROMETHEUS_DURATION) $(SOAK_ARGS)

# MQTT → Kafka → labeler → TSDB: QoS-1 messages/s stored end to end with
# 1, 100 and 1,000 publishers, and MQTT publish → MQTT alert p50/p99, next
# to hikhvar/mqtt2prometheus in front of Debian's Prometheus on the same
# mosquitto.
.PHONY: bench-mqtt
bench-mqtt:
	cd tools/bench && $(GO) run ./cmd/tmamqtt

# The edge probe against prometheus-node-exporter + prometheus --agent
# doing the same job (host metrics every 1 s by remote_write): RSS, CPU,
# binary size; then the probe alone at 100 ms sampling of ≥ 200 series.
.PHONY: bench-probe
bench-probe:
	cd tools/bench && $(GO) run ./cmd/tmaprobe

# A 30-day report of 50 series at 1-minute resolution, 5 charts with
# forecasts: wall time and peak RSS.
.PHONY: bench-report
bench-report:
	cd tools/bench && $(GO) run ./cmd/tmareport

# The edge probe as small static binaries for amd64, arm64 and arm/v7.
PROBE_PLATFORMS ?= linux/amd64 linux/arm64 linux/arm/v7
.PHONY: probe-cross
probe-cross:
	@mkdir -p $(BIN)
	@for p in $(PROBE_PLATFORMS); do \
	  os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; arm=$${rest#*/v}; \
	  out=$(BIN)/probe-$$os-$$arch$$( [ "$$arch" = arm ] && echo v$$arm ); \
	  echo "go build $$out"; \
	  (cd services/probe && env CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $$( [ "$$arch" = arm ] && echo GOARM=$$arm ) \
	    GOWORK=off $(GO) build -trimpath -ldflags='-s -w' -o ../../$$out .) || exit 1; \
	done

clean:
	rm -rf $(BIN)
