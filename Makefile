# vigil — see README.md. `make run` starts the demo; `make test` is what CI runs.
GO          ?= go
BIN         := bin/vigil
PKG         := github.com/prometheus/common/version
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH      ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) \
               -X $(PKG).Branch=$(BRANCH) -X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
CONFIG      ?= examples/vigil.yml
FUZZTIME    ?= 15s

.PHONY: all build image package run test lint bench bench-peer bench-scale bench-sched bench-soak bench-rules bench-db bench-invoice bench-logscan bench-notify bench-ui fuzz clean

all: build

# Static (CGO_ENABLED=0): no libc mapping, pure-Go DNS resolver, runs on any
# Linux; it also saves ~1.4 MB of idle RSS (BENCHMARKS.md).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/invoice-service ./examples/invoice-service

# The container image (Dockerfile): the static binary above copied into
# FROM scratch with the host's CA certificates, passwd/group lines for
# nobody (65534) and an empty /data owned by it, staged in bin/image/.
# Nothing is pulled, so it builds offline with Debian's docker.io.
IMAGE ?= vigil
image: build
	rm -rf bin/image && mkdir -p bin/image/etc/ssl/certs bin/image/data
	cp /etc/ssl/certs/ca-certificates.crt bin/image/etc/ssl/certs/
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >bin/image/etc/passwd
	printf 'root:x:0:\nnogroup:x:65534:\n' >bin/image/etc/group
	docker build -t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

# deb and rpm packages (examples/deploy/packages/nfpm.yaml) in bin/:
# /usr/bin/vigil, the systemd unit, /etc/vigil/vigil.yml, the vigil user.
# nfpm runs at a pinned version through `go run`, so it is no dependency of
# the agent. Package version: the tag without its v, or 0.0.0-git.DESCRIBE
# (0.0.0~git... in the deb) before the first tag.
NFPM        := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
PKG_VERSION := $(shell echo '$(VERSION)' | sed -E 's/^v([0-9]+\.)/\1/; /^[0-9]+\.[0-9]+/!{s/-/./g; s/^/0.0.0-git./;}')
package: build
	rm -f bin/vigil*.deb bin/vigil*.rpm
	for p in deb rpm; do \
	  VIGIL_VERSION=$(PKG_VERSION) GOARCH=$$($(GO) env GOARCH) $(GO) run $(NFPM) package \
	    --config examples/deploy/packages/nfpm.yaml --packager $$p --target bin/ || exit 1; \
	done

# The demo: the invoice platform (gateway :8480, primary :8481, standby
# :8482, upstream :8483, admin on 127.0.0.1:8490-8493, request log in
# data/demo/invoice-service.log) and the agent with the example config on
# :9877. Ctrl-C stops both.
run: build
	@mkdir -p data/demo
	@./bin/invoice-service --log.file data/demo/invoice-service.log demo --data.dir data/demo & demo=$$!; \
	  trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null' EXIT INT TERM; \
	  ./$(BIN) run --config.file=$(CONFIG)

# Unit, integration and end-to-end tests. CI sets VIGIL_REQUIRE_INTEGRATION=1
# so tests that need a real service fail instead of skipping; without it,
# the tests skipped for want of one are listed at the end (internal/testenv).
# The end-to-end tests mostly wait on timers and child processes, so more
# of them run at once than there are cores: -parallel 8 tests per package,
# -p 4 packages (builds and test binaries) at a time; on CI's 2 cores that
# halves the run (BENCHMARKS.md, "Test suite time").
TEST_FLAGS := -race -count=1 -timeout 20m -p 4 -parallel 8
TEST_SKIPS := bin/test-skips.txt
test:
	$(GO) vet ./...
	@mkdir -p bin && rm -f $(TEST_SKIPS)
	@echo "$(GO) test $(TEST_FLAGS) ./..."
	@VIGIL_TEST_SKIPS=$(CURDIR)/$(TEST_SKIPS) $(GO) test $(TEST_FLAGS) ./...; status=$$?; \
	  if [ -s $(TEST_SKIPS) ]; then echo "Skipped, and what they need:"; sort $(TEST_SKIPS) | sed 's/^/  /'; fi; \
	  exit $$status

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Go benchmarks, then the side-by-side peer measurements recorded in BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...
	$(MAKE) bench-peer
	$(MAKE) bench-invoice
	$(MAKE) bench-logscan
	$(MAKE) bench-notify
	$(MAKE) bench-ui

# The status page: rendering the overview and a check's detail (10 checks
# with full histories), then idle RSS beside node_exporter while a browser
# tab reloads the overview every 15 s (VIEWER=1 in TestPeerIdleRSS).
bench-ui:
	$(GO) test -run '^$$' -bench StatusPage -benchtime 200x -count 6 ./agent/ | grep -E '^Bench|ok'
	VIEWER=1 $(GO) test -tags peerbench -run 'TestPeerIdleRSS' -count 1 -v -timeout 30m ./agent/ | grep -E 'idle RSS|ok|FAIL'

# Side by side with peers in the same run (Debian packages
# prometheus-node-exporter and prometheus-blackbox-exporter): /metrics
# rendering against client_golang; idle RSS (after IDLE, default 60s) and
# start-up time of `vigil run` against node_exporter; a cycle of 1,000 HTTP
# checks against blackbox_exporter and 500 ICMP checks (needs root).
bench-peer:
	$(GO) test -tags peerbench -run '^$$' -bench '10k' -benchmem -count 6 ./agent/metrics/
	$(GO) test -tags peerbench -run 'TestPeer' -count 1 -v -timeout 30m ./agent/ ./probes/network/
	$(MAKE) bench-db

# The agent at scale beside blackbox_exporter (Debian's
# prometheus-blackbox-exporter): `vigil run` with N http checks at a 1m
# interval against a local target (RSS, CPU ms per run, status page and API
# times, /metrics size, check starts per 5 s), and /probe driven for the same
# N targets at the same rate. VIGIL_SCALE_N (default 1000,10000),
# VIGIL_SCALE_WARMUP (default 3m30s) and VIGIL_SCALE_WINDOW (default 60s).
bench-scale:
	$(GO) test -tags peerbench -run TestPeerScale -count 1 -v -timeout 60m ./agent/

# 1,000 rules over 10,000 checks' series, beside Debian's Prometheus on the
# same data and rule file.
bench-rules:
	$(GO) test -tags peerbench -run 'TestPeerRulesAtScale$$' -count 1 -v -timeout 40m ./rules/

# An hour of `vigil run` with 10,000 http checks (VIGIL_SOAK_N, VIGIL_SOAK):
# RSS, anonymous memory, CPU per run and the store's size minute by minute,
# the status page, a check page and the API fetched every 5 minutes.
bench-soak:
	$(GO) test -tags peerbench -run TestPeerScaleSoak -count 1 -v -timeout 3h ./agent/

# The scheduler at 10,000 checks: first runs over the start-up splay and run
# starts per 5 s (fake clock), the start-up peak without splay, and
# Agent.Reload of 10,000 http checks (median of VIGIL_SCHED_RELOADS, default 7).
bench-sched:
	$(GO) test -tags peerbench -run TestSchedulerScale -count 1 -v -timeout 30m ./agent/scheduler/

# A full postgres check against the same statements issued with pgx,
# alternating six times (the local PostgreSQL's fsyncs drift; alternation
# keeps the comparison fair).
bench-db:
	$(GO) test -c -o bin/database.test ./probes/database/
	for i in 1 2 3 4 5 6; do for b in PostgresCheck PostgresRawPgx; do \
	  ./bin/database.test -test.run '^$$' -test.bench "^Benchmark$$b\$$" -test.benchtime 40x -test.benchmem | grep ^Bench; done; done

# invoice_qr end to end against the demo platform on loopback, split into
# service and probe time, the QR decode of a 256 px PNG, and the real
# e-invoices of ../shared/fixtures/einvoice read per format (PDF beside OFD).
bench-invoice:
	$(GO) test -run '^$$' -bench 'InvoiceQR|DecodeQR256|RealDocuments' -benchmem -count 6 ./probes/invoice/

# logscan end to end (vigil once over a 1,000,000-line log, 20 patterns,
# 5% matching) side by side with mtail -one_shot running the equivalent
# program and grep -cE, alternating RUNS times; lines per CPU-second.
# Needs Debian's mtail.
# 10,000 alerts through routing and the outbox to a local receiver, and the
# same burst through Debian's Alertmanager (BENCHMARKS.md).
bench-notify:
	RUNS=$${RUNS:-3} $(GO) test -tags peerbench -run TestPeerPagingBurst -count 1 -v -timeout 30m ./agent/notify/ | grep -E 'alerts delivered|ok|FAIL'

bench-logscan:
	RUNS=$${RUNS:-3} $(GO) test -tags peerbench -run TestPeerLogscanThroughput -count 1 -v -timeout 30m ./probes/logscan/ | grep -E 'lines|ok|FAIL'

# -fuzzminimizetime for the invoice decoders: each input takes milliseconds,
# so minimising a new one for the default 60s would use up a short -fuzztime.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./agent/config
	$(GO) test -run '^$$' -fuzz FuzzMatcher -fuzztime $(FUZZTIME) ./probes/logscan
	$(GO) test -run '^$$' -fuzz FuzzParsePayload -fuzztime $(FUZZTIME) ./probes/invoice/einvoice
	$(GO) test -run '^$$' -fuzz FuzzDecodeQRBytes -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./probes/invoice
	$(GO) test -run '^$$' -fuzz FuzzQRFromPDF -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./probes/invoice
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./probes/invoice/ofd
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./probes/invoice/fpxml

clean:
	rm -rf bin data
	$(GO) clean -testcache
