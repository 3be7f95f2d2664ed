# clusterdns — see README.md. `make test` installs what the tests need
# (Debian packages, the test kube-apiserver) and runs the whole suite.
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build test test-deps apiserver flake bench soak vet fmt clean

all: build

# The release build: static, -trimpath, stripped (the Dockerfile runs the same script).
build:
	bash deploy/build-binaries.sh bin

test-deps:
	bash hack/install-test-deps.sh

# kube-apiserver and etcd, built once into a cache folder keyed by go.sum.
apiserver:
	bash test/apiserver/build.sh

test: test-deps
	@bin="$$(bash test/apiserver/build.sh | tail -n 1)" && \
	export CLUSTERDNS_APISERVER_BIN="$$bin" && \
	$(GO) vet ./... && \
	$(GO) test -count=1 -p 2 -timeout 25m ./... && \
	cd test/compat && $(GO) vet ./... && $(GO) test -count=1 -p 2 -timeout 15m ./...

# The suite N times (default 5), pass/fail per package: `make flake N=5`;
# FLAKE_LOAD=1 runs a build loop beside it to load every CPU.
N ?= 5
flake:
	bash hack/flake.sh $(N)

# All benchmarks (about 20 minutes): the foundation run against Knot DNS,
# the extra DNS figures, the node proxy against kube-proxy, and the 60 s
# load test at 80 % of the measured maximum. The 10-minute soak is separate:
# `CLUSTERDNS_SOAK=1 go test -run TestSoak -v -timeout 20m ./test/faults/`.
bench: test-deps
	bash bench/run.sh
	bash bench/extra.sh
	bash bench/nodeproxy.sh
	CLUSTERDNS_LOAD=1 $(GO) test -count=1 -run '^TestLoad$$' -v -timeout 10m ./test/faults/

# 10 minutes of steady load; RSS and goroutines must stay flat.
soak: test-deps
	CLUSTERDNS_SOAK=1 $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 20m ./test/faults/

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
