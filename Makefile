# PushGo Gateway. `make run` runs the whole gateway on this machine;
# `make test` runs every test of every module. Nothing else to install.

GO        ?= go
PKGS      := ./... ./schemas/... ./broker/... ./ingest/... ./projector/... ./pusher/...
# Every fuzz target of the workspace (found in the source by .ci/fuzz) runs
# for FUZZTIME each: a few seconds in `make test`, 2 minutes each in
# `make fuzz-long` unless FUZZTIME is given (make fuzz-long FUZZTIME=20s).
FUZZTIME  ?= 2s
FUZZLONGTIME := $(if $(filter file,$(origin FUZZTIME)),2m,$(FUZZTIME))

.PHONY: build run test test-deps unit fuzz fuzz-long bench lint clean compose-keys

build:
	$(GO) build -o bin/pushgo .

run: build
	./bin/pushgo

test: lint test-deps unit fuzz

# Chromium for the console's browser test and the modules of the PromQL
# checker, fetched before the tests run (.ci/test-deps).
test-deps:
	@GO="$(GO)" .ci/test-deps

# -timeout bounds one package's test binary. Every package runs under the
# race detector but e2e, which runs beside them: it starts the pushgo
# binary (built without it) as processes, so there the detector would
# instrument only its own harness, whose fake providers and load clients
# then set the pace of its push-heavy tests (the pusher crash test took
# 92 s with it, 30 s without). Its output is printed when it ends, after the
# other packages' lines; it takes about 3 minutes on 2 quiet cores.
unit:
	@echo "$(GO) test -race -count=1 -timeout 12m <every package but e2e>, and beside it $(GO) test -count=1 -timeout 12m ./e2e/"; \
	pkgs=$$($(GO) list $(PKGS)) || exit 1; \
	e2elog=$$(mktemp) || exit 1; trap 'rm -f "$$e2elog"' EXIT; \
	e2epkg=$$(echo "$$pkgs" | grep '/e2e$$'); rest=$$(echo "$$pkgs" | grep -v '/e2e$$'); rc=0; race=0; \
	if [ -n "$$e2epkg" ]; then $(GO) test -count=1 -timeout 12m $$e2epkg >"$$e2elog" 2>&1 & e2e=$$!; fi; \
	if [ -n "$$rest" ]; then $(GO) test -race -count=1 -timeout 12m $$rest; race=$$?; fi; \
	if [ -n "$$e2epkg" ]; then wait $$e2e; rc=$$?; cat "$$e2elog"; fi; \
	[ $$race -eq 0 ] && [ $$rc -eq 0 ]

fuzz:
	@GO="$(GO)" FUZZTIME="$(FUZZTIME)" .ci/fuzz

# Crashers found are kept in <package>/testdata/fuzz/<Target>/: commit each,
# once its bug is fixed, as the regression test it then is.
fuzz-long:
	@GO="$(GO)" FUZZTIME="$(FUZZLONGTIME)" .ci/fuzz

# The broker credentials of compose.yaml: one nkey per role in deploy/keys
# (seeds 0644 in a 0700 directory, public keys in nkeys.env). Kept if present.
compose-keys:
	$(GO) run ./cmd/pushgo-keys -dir deploy/keys

# `make bench` reports medians of 3 runs (issue 14's budgets are stated so);
# BENCHFLAGS='-runs 1' for one, given flags win over this default.
bench:
	$(GO) run ./cmd/pushgo-bench -runs 3 $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd deploy/prometheus/promqlcheck && GOWORK=off $(GO) vet ./...

clean:
	rm -rf bin data
