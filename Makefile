# zsync. The two set-up commands of the README:
#   make demo   build zsync and show it snapshot, push and prune between two pools (in the test VM)
#   make test   the whole test suite: vet, unit tests, then the real-OpenZFS tier in the VMs
#               (OpenZFS 2.1 and 2.3 at once; ZFS=2.3 runs one version)
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/zsync-dev/zsync/cmd.version=$(VERSION)

# ZFS=2.1 or ZFS=2.3 narrows the VM targets to one OpenZFS version.
ZFS ?=
ifneq ($(ZFS),)
export REALZFS_ZFS := $(ZFS)
export ZSYNC_VM_ZFS := $(ZFS)
endif

.PHONY: build test unit vet realzfs demo bench bench-scale fuzz vm vm-stop kill-test soak clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/zsync .

vet:
	$(GO) vet ./...
	$(GO) vet -tags realzfs ./...
	$(GO) vet ./testdata/bench/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit:
	$(GO) test -count=1 ./...

# Real OpenZFS inside the QEMU test VM (built once and cached; see testdata/vm/testvm).
realzfs:
	testdata/vm/realzfs

test: vet unit realzfs

demo: build
	testdata/vm/demo

# Go micro-benchmarks, then stream throughput against OpenSSH through a
# private sshd on 127.0.0.1 (push and pull), again through a proxy adding a
# 50 ms round trip, and the peak RSS of both zsync ends (see testdata/bench/openssh).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	GO=$(GO) testdata/bench/openssh

# zsync against syncoid and a per-dataset `zfs send | zfs recv` loop in the
# test VM, on SCALE (default "50x10": datasets x snapshots; e.g. SCALE="50x10
# 200x10"): wall time and zfs invocations of the initial, no-op and
# one-new-snapshot runs and of a second one-new run, with zsync's ratios. One OpenZFS version (ZFS=2.3;
# default 2.1); BENCH_KEEP_VM=1 leaves the VM running. Not part of `make test`.
bench-scale:
	GO=$(GO) testdata/vm/benchscale

# Every Go fuzz target of every package, FUZZTIME each (default 10m), one
# after another; stops at the first failure, which leaves the input under
# the package's testdata/fuzz/FuzzX/. Plain `go test` runs the committed
# corpora as ordinary tests. On a shared machine: make fuzz FUZZFLAGS='-parallel 1'.
# Minimising a new input is capped at 5s: FuzzStreamGuard's inputs are whole
# streams, and the default 60s minimisation of one left no time to fuzz.
FUZZTIME  ?= 10m
FUZZFLAGS ?=
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg); \
		for name in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $(FUZZFLAGS) $$pkg; \
		done; \
	done

# Kill push runs at random points ZSYNC_KILL_ROUNDS times (default 20; the
# regular test tier does 3) and check that re-runs converge.
kill-test:
	ZSYNC_KILL_ROUNDS=$${ZSYNC_KILL_ROUNDS:-20} REALZFS_RUN='^TestKillConverges$$' testdata/vm/realzfs ./cmd

# Faults on every version: ROUNDS rounds (default 50) of push and pull with a
# fault each, then runs until convergence; prints a table per version and
# fails on any leaked hold or bookmark, lost snapshot or data mismatch. The
# regular tier runs 5 rounds. SEED=N replays a run.
soak:
	testdata/vm/soak

vm:
	testdata/vm/testvm start

vm-stop:
	testdata/vm/testvm stop

clean:
	rm -rf bin .vmtest
