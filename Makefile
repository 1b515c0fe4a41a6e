# runproof — `make help` lists the targets.
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help build test test-pg lint bench bench-zip bench-otlp fuzz demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build ./runproof
	$(GO) build -o runproof ./cmd/runproof

test: ## run every test (PostgreSQL ones too when RUNPROOF_TEST_POSTGRES_URL is set)
	$(GO) test -race -count=1 ./...

test-pg: ## run every test against the local PostgreSQL
	RUNPROOF_TEST_POSTGRES_URL=$${RUNPROOF_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable} $(GO) test -race -count=1 ./...

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: ## ingest benchmark: runproof's HTTP API vs raw inserts, SQLite and PostgreSQL
	$(GO) run ./bench/ingest

bench-zip: ## ZIP export and verify of a 10 000-step run vs zip -6 and sha256sum
	$(GO) run ./bench/zip

bench-otlp: ## OTLP/HTTP span ingest vs the native step API
	$(GO) run ./bench/otlp

fuzz: ## run every fuzz target for 20 s each
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSteps$$' -fuzztime 20s ./internal/service
	$(GO) test -run '^$$' -fuzz '^FuzzMappedSpansAreValidSteps$$' -fuzztime 20s ./internal/service
	$(GO) test -run '^$$' -fuzz '^FuzzEvaluate$$' -fuzztime 20s ./internal/policy
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime 20s ./internal/otlp
	$(GO) test -run '^$$' -fuzz '^FuzzStepHash$$' -fuzztime 20s ./internal/runproof
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalJSON$$' -fuzztime 20s ./internal/runproof
	$(GO) test -run '^$$' -fuzz '^FuzzScanBundle$$' -fuzztime 20s ./internal/verify
	$(GO) test -run '^$$' -fuzz '^FuzzParseFixed$$' -fuzztime 20s ./internal/runproof
	$(GO) test -run '^$$' -fuzz '^FuzzEntryBytes$$' -fuzztime 20s ./internal/ledger
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalEvidence$$' -fuzztime 20s ./internal/evidence
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalTokens$$' -fuzztime 20s ./internal/verify
	$(GO) test -run '^$$' -fuzz '^FuzzCSVReader$$' -fuzztime 20s ./internal/verify

demo: ## seed the demo tenant and export its bundles into ./runproof-demo
	$(GO) run ./cmd/runproof demo
