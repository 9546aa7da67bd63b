# OneBox — the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
BIN     := bin/onebox
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The race detector needs cgo.
export CGO_ENABLED := 1

.PHONY: all build run test vet bench loadtest soak fuzz screenshots clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./server

## run: build and start the server in demo mode on ./data (keys are printed)
run: build
	./$(BIN) serve --demo

## test: every test, with the race detector (installs Chromium for the
## browser tests of the web app when it is missing)
test:
	./scripts/ensure-chromium.sh
	./scripts/ensure-postgres.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	# a short run of every fuzz target in the module, found by its
	# declaration (scripts/fuzz-all.sh), so a new target needs no edit here
	FUZZTIME=$(TESTFUZZTIME) GO=$(GO) ./scripts/fuzz-all.sh

## fuzz: every fuzz target in the module for FUZZTIME each (default 60s),
## one after another, with the executions each made
FUZZTIME ?= 60s
# TESTFUZZTIME is each target's share of make test: with 25 targets,
# about two and a half minutes in all (each also compiles).
TESTFUZZTIME ?= 4s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz-all.sh

## bench: the micro-benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/bolt ./internal/hub

## loadtest: the end-to-end load figures recorded in docs/benchmarks.md
loadtest: build
	./$(BIN) loadtest

## soak: 10 minutes with 5,000 sockets and steady traffic; reports the
## server's memory and goroutines at the start and end, and p99 latencies
## (not part of make test)
SOAKTIME    ?= 10m
SOAKSOCKETS ?= 5000
soak: build
	./$(BIN) loadtest -soak $(SOAKTIME) -sockets $(SOAKSOCKETS)

## screenshots: refresh docs/screenshots from the browser tests
screenshots:
	./scripts/ensure-chromium.sh
	ONEBOX_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run TestScreenshots ./internal/browsertest

clean:
	rm -rf bin
