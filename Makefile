# OneBox — the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
BIN     := bin/onebox
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The race detector needs cgo.
export CGO_ENABLED := 1

.PHONY: all build run test vet bench loadtest clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./server

## run: build and start the server in demo mode on ./data (keys are printed)
run: build
	./$(BIN) serve --demo

## test: every test, with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: the micro-benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/bolt ./internal/hub

## loadtest: the end-to-end load figures recorded in docs/benchmarks.md
loadtest: build
	./$(BIN) loadtest

clean:
	rm -rf bin
