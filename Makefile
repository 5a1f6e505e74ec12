# PushGo Gateway. `make run` runs the whole gateway on this machine;
# `make test` runs every test of every module. Nothing else to install.

GO        ?= go
PKGS      := ./... ./schemas/... ./broker/... ./ingest/... ./projector/... ./pusher/...
FUZZTIME  ?= 3s
# package:FuzzTarget pairs run for FUZZTIME each by `make test`.
FUZZ_TARGETS := \
	./schemas/wire:FuzzDecode \
	./schemas/ops:FuzzValidateEvent \
	./schemas/ops:FuzzValidateThing \
	./schemas/ops:FuzzValidateMessage \
	./schemas/ops:FuzzMessageQuery \
	./schemas/entityselector:FuzzParse

.PHONY: build run test unit fuzz bench lint clean

build:
	$(GO) build -o bin/pushgo .

run: build
	./bin/pushgo

test: lint unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test $$pkg -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME); \
	done

bench:
	$(GO) run ./cmd/pushgo-bench $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin data
