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

# Every package under the race detector but e2e, which runs beside them
# without it (.ci/unit says why).
unit:
	@GO="$(GO)" .ci/unit $(PKGS)

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
