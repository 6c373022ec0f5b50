# zsync. The two set-up commands of the README:
#   make demo   build zsync and show it snapshot, push and prune between two pools (in the test VM)
#   make test   the whole test suite: vet, unit tests, then the real-OpenZFS tier in the VM
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/zsync-dev/zsync/cmd.version=$(VERSION)

.PHONY: build test unit vet realzfs demo bench vm vm-stop clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/zsync .

vet:
	$(GO) vet ./...
	$(GO) vet -tags realzfs ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit:
	$(GO) test -count=1 ./...

# Real OpenZFS inside the QEMU test VM (built once and cached; see testdata/vm/testvm).
realzfs:
	testdata/vm/realzfs

test: vet unit realzfs

demo: build
	testdata/vm/demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vm:
	testdata/vm/testvm start

vm-stop:
	testdata/vm/testvm stop

clean:
	rm -rf bin .vmtest
