# dagmm: build, test, demo, bench, lint. See README.md.
GO       ?= go
BIN      := bin/dagmm
PKGS     := ./...
# RACE_PKGS: the packages with goroutines of their own, tested again under the race detector.
RACE_PKGS := ./serve/... ./model/ ./datasets/ ./internal/natsconn/ ./internal/natsio/ ./fleet/
BENCHTIME ?= 2s

.PHONY: all build test test-race demo demo-fleet bench bench-train bench-score bench-explain lint fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dagmm

## test: vet, staticcheck, every test, and the concurrent packages again under the race detector (what CI runs)
test:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(MAKE) chart-test

## chart-test: the image's and the Helm chart's offline checks (charts/check, a module of its own): the Dockerfile's binary is static and starts as its non-root USER; helm lint --strict; every rendering decoded strictly against the Kubernetes and Prometheus Operator types; every pod against the restricted Pod Security Standard
.PHONY: chart-test
chart-test:
	cd charts/check && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

## test-race: every package under the race detector (slower than make test's subset)
test-race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## demo: the main job end to end, on generated data
demo: build
	./$(BIN) demo

## demo-fleet: a model per host end to end on an embedded NATS server: history, scheduler, trainers, registry, the scorer picking the models up (about 10 s)
demo-fleet: build
	./$(BIN) demo --fleet

## bench: the speed figures quoted in README.md
bench: bench-train bench-score

bench-train:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./train/

bench-score:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./model/

## bench-explain: accuracy of every explanation method on generated anomalies (docs/explanations.md), and its cost
bench-explain:
	$(GO) run ./internal/explainbench/cmd/explainbench
	$(GO) test -run '^$$' -bench Explain -benchtime 1s ./model/

## bench-paper: the DAGMM paper's Table 2 on ../shared/datasets, 20 seeds each (about 22 minutes on 2 cores); rewrites docs/benchmarks.md and notebooks/data/
.PHONY: bench-paper notebooks
bench-paper:
	scripts/bench-paper.sh

## bench-real: dagmm beside PCA and kNN on real server metrics (../shared/datasets/smd), 3 seeds; rewrites docs/real-metrics.md (keeping its Attempts section)
.PHONY: bench-real
bench-real:
	scripts/bench-real.sh

## bench-fleet: per-host models against one fleet model on fleets from dagmm gen --hosts (5 fleets of 20 hosts, 2 seeds each; about 3 minutes on 2 cores); rewrites docs/fleet-quality.md
.PHONY: bench-fleet
bench-fleet:
	scripts/bench-fleet.sh

## notebooks: execute notebooks/*.ipynb headlessly with Debian's jupyter, saving their outputs in the files
notebooks:
	@test -x /usr/bin/jupyter || (echo 'notebooks: apt-get install jupyter-nbconvert python3-ipykernel python3-matplotlib python3-pandas' && exit 1)
	for nb in notebooks/*.ipynb; do /usr/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; done

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo 'gofmt: files above need formatting' && exit 1)
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
	cd charts/check && $(GO) mod tidy -diff

fmt:
	gofmt -w .

clean:
	rm -rf bin
