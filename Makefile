# Ebbflow: rolls Cilium performance tuning out across a fleet of Kubernetes clusters.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

# Tools, pinned; installed into ./bin from the Go module proxy.
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
GOLANGCI_LINT_VERSION := v2.15.0
PROTOC_GEN_OPENAPIV2_VERSION := v2.34.0

GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/buf-$(BUF_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@

$(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@

$(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@

$(BIN)/protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
	@touch $@

$(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

$(BIN)/protoc-gen-openapiv2-$(PROTOC_GEN_OPENAPIV2_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(PROTOC_GEN_OPENAPIV2_VERSION)
	@touch $@

TOOLS := $(BIN)/protoc-gen-openapiv2-$(PROTOC_GEN_OPENAPIV2_VERSION) $(BIN)/buf-$(BUF_VERSION) $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION) $(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
	$(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) \
	$(BIN)/protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION)

# The TypeScript client's generator and compiler, pinned in clients/ts/package-lock.json.
TS_DIR := clients/ts
TS_TOOLS := $(TS_DIR)/node_modules/.package-lock.json
$(TS_TOOLS): $(TS_DIR)/package-lock.json
	npm ci --prefix $(TS_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# The dashboard's build tools and libraries, pinned in web/package-lock.json.
UI_DIR := web
UI_TOOLS := $(UI_DIR)/node_modules/.package-lock.json
$(UI_TOOLS): $(UI_DIR)/package-lock.json
	npm ci --prefix $(UI_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: tools
tools: $(TOOLS) $(TS_TOOLS) $(UI_TOOLS) ## Install the pinned code generators, linter and TypeScript tools.

.PHONY: generate
generate: tools ## Wipe and regenerate the code generated from proto/.
	find proto -name '*.pb.go' -delete
	find proto -type d -name '*connect' -prune -exec rm -rf {} +
	rm -rf $(TS_DIR)/src/gen
	go run ./internal/protovendor > proto/buf/validate/validate.proto
	buf generate
	buf build --path proto/ebbflow/v1 -o proto/ebbflowdesc/ebbflow.binpb
	go run ./internal/openapi openapi/ebbflow.swagger.json > openapi/ebbflow.openapi.json

UI_ASSETS := controller/ui/assets

.PHONY: ui
ui: $(UI_TOOLS) ## Type-check the dashboard (web/) and rebuild its embedded assets (controller/ui/assets).
	npm run --prefix $(UI_DIR) --silent typecheck
	npm run --prefix $(UI_DIR) --silent build

.PHONY: checkgenerate
checkgenerate: generate ui ## Fail when the checked-in generated code or dashboard assets differ from their sources.
	@if [ -n "$$(git status --porcelain -- proto $(TS_DIR)/src/gen openapi $(UI_ASSETS))" ]; then \
		echo "generated code or dashboard assets are out of date; run 'make generate ui' and commit:"; \
		git status --porcelain -- proto $(TS_DIR)/src/gen openapi $(UI_ASSETS); git diff --stat -- proto $(TS_DIR)/src/gen openapi $(UI_ASSETS); exit 1; fi

.PHONY: build
build: ## Build fleet-controller, fleet-agent and fleetctl into ./bin.
	go build -o $(BIN)/ ./cmd/... ./e2e/kubebox/cmd/kubebox ./e2e/cmd/latency-target

.PHONY: lint
lint: tools ## go vet, gofmt, golangci-lint (.golangci.yml), buf lint and buf breaking against main.
	go vet ./...
	golangci-lint run ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	buf lint
	@if git rev-parse --verify -q main >/dev/null; then buf breaking --against '.git#branch=main'; fi
	@big=$$(git ls-files -z | grep -zv '\(^\|/\)testdata/' | xargs -0 -r stat -c '%s %n' -- 2>/dev/null | awk '$$1 > 1048576' || true); \
		if [ -n "$$big" ]; then echo "tracked files over 1 MB outside testdata/ (build outputs belong in ./bin):"; echo "$$big"; exit 1; fi

.PHONY: clean
clean: ## Remove build outputs (./bin) and Go's test cache; the kubebox binaries in ~/.cache stay.
	rm -rf $(BIN)
	go clean -testcache

# Debian's Chromium for the dashboard's browser tests, from this Debian release's own archive
# (apt pins it to the release's current security build). Installed when missing; the tests run
# it headless on loopback.
CHROMIUM ?= /usr/bin/chromium

.PHONY: chromium
chromium: ## Install Debian's chromium (for the dashboard's browser tests) when it is missing.
	@if [ ! -x $(CHROMIUM) ]; then \
		sudo=""; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		release=$$(. /etc/os-release && echo "$$VERSION_CODENAME"); \
		echo "installing chromium from Debian $$release"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends -t "$$release" chromium >/dev/null; \
	fi
	@$(CHROMIUM) --version 2>/dev/null

.PHONY: test
test: checkgenerate lint kubebox chromium ## Every check and every test (race detector on), the browser tests included.
	EBBFLOW_BROWSER=$(CHROMIUM) go test $(GO_TEST_FLAGS) ./...

.PHONY: kubebox
kubebox: ## Build (once, then cached) the local Kubernetes binaries the agent and e2e tests run.
	go run ./e2e/kubebox/cmd/kubebox -build

IMAGE ?= ghcr.io/ebbflow/ebbflow:dev
IMAGE_VERSION ?= dev

.PHONY: image
image: ## Build the container image (the three commands on distroless) with docker or podman.
	@engine=""; \
	for e in docker podman; do \
		if command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1; then engine=$$e; break; fi; \
	done; \
	if [ -z "$$engine" ]; then \
		echo "make image: no container engine here: neither 'docker info' nor 'podman info' succeeds" >&2; \
		echo "(a docker client without a running daemon is not enough); start Docker or Podman, or build ./Dockerfile elsewhere" >&2; \
		exit 1; \
	fi; \
	echo "building $(IMAGE) with $$engine"; \
	$$engine build --build-arg VERSION=$(IMAGE_VERSION) -t $(IMAGE) .

.PHONY: bench
bench: ## Benchmarks that back the speed figures in the README.
	go test -run '^$$' -bench . -benchmem ./...

N ?= 1000
FLEETSIM_FLAGS ?=
REF ?=

# build-ref starts a recipe line of bench-fleet and bench-raft: with REF set it builds that
# revision's fleet-controller into $(BIN)/ref and sets the shell's ref to its path; without
# REF, ref is empty.
define build-ref
ref=""; \
if [ -n "$(REF)" ]; then \
	rev=$$(git rev-parse --verify --quiet "$(REF)^{commit}") || { echo "REF=$(REF) is not a commit" >&2; exit 2; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "building fleet-controller of $(REF) ($$rev) into $(BIN)/ref"; \
	git archive --format=tar "$$rev" | tar -x -C "$$tmp"; \
	mkdir -p $(BIN)/ref; \
	(cd "$$tmp" && go build -o $(BIN)/ref/fleet-controller ./cmd/fleet-controller); \
	ref=$(BIN)/ref/fleet-controller; \
fi
endef

.PHONY: bench-fleet
bench-fleet: ## Load-test fleet-controller with N (1000) simulated agents; REF=<git rev> runs that revision side by side.
	@$(build-ref); \
	go run ./e2e/cmd/fleetsim --n $(N) $${ref:+--ref-controller-bin "$$ref"} $(FLEETSIM_FLAGS)

RAFTBENCH_FLAGS ?=

.PHONY: bench-raft
bench-raft: ## Write-path and failover benchmark of a 3-node fleet-controller against 3-node etcd; REF=<git rev> adds that revision.
	@$(build-ref); \
	go run ./e2e/cmd/raftbench $${ref:+--ref-controller-bin "$$ref" --ref-label "$(REF)"} $(RAFTBENCH_FLAGS)

FUZZTIME ?= 30s
# package:fuzzer pairs run by 'make fuzz'.
FUZZERS := ./controller/:FuzzRequests ./store/:FuzzApplyCommand ./agent/cluster/:FuzzAssignment \
	./rollout/profile/:FuzzDecodeValidate

.PHONY: fuzz
fuzz: ## Run every fuzzer for FUZZTIME (30s) each, one after another.
	@for pf in $(FUZZERS); do \
		pkg=$${pf%%:*}; fn=$${pf##*:}; \
		echo "fuzzing $$fn in $$pkg for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

RUNS ?= 10
SEED ?=
CHAOS_FLAGS ?=

.PHONY: chaos
chaos: ## Fault injection: RUNS (10) runs of a 3-node controller under kills, pauses, partitions, full disks (root) and membership changes, histories checked with porcupine; SEED=<n> starts there.
	go run ./e2e/cmd/chaos --runs $(RUNS) $(if $(SEED),--seed $(SEED)) $(CHAOS_FLAGS)

CLUSTERS ?= 3
DEMO_FLAGS ?=

.PHONY: demo
demo: kubebox ## The main job: a 3-node controller, CLUSTERS (3) local clusters with agents, a staged rollout with a regression, a failover.
	go run ./e2e/cmd/demo --clusters $(CLUSTERS) $(DEMO_FLAGS)
