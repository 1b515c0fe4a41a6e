# runproof — `make help` lists the targets.
.DEFAULT_GOAL := help
GO ?= go
FUZZTIME ?= 20s

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

bench: ## ingest benchmark: runproof's HTTP API vs raw inserts, SQLite (and PostgreSQL when RUNPROOF_TEST_POSTGRES_URL is set)
	$(GO) run ./bench/ingest

bench-zip: ## ZIP export and verify of a 10 000-step run vs zip -6 and sha256sum
	$(GO) run ./bench/zip

bench-otlp: ## OTLP/HTTP span ingest vs the native step API
	$(GO) run ./bench/otlp

fuzz: ## run every fuzz target, FUZZTIME each (default 20s)
	@grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u | while read -r pkg; do \
		targets=$$($(GO) test -list '^Fuzz' ./$$pkg) || { echo "$$targets"; exit 1; }; \
		for target in $$(echo "$$targets" | grep '^Fuzz'); do \
			echo "$$target in ./$$pkg"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
		done; \
	done

demo: ## seed the demo tenant and export its bundles into ./runproof-demo
	$(GO) run ./cmd/runproof demo
