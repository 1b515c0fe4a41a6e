# runproof — `make help` lists the targets.
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help build test test-pg lint bench bench-zip fuzz demo

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

fuzz: ## fuzz the step decoder and the policy evaluator for 30 s each
	$(GO) test -run '^$$' -fuzz FuzzDecodeSteps -fuzztime 30s ./internal/service
	$(GO) test -run '^$$' -fuzz FuzzEvaluate -fuzztime 30s ./internal/policy
