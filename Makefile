# Two commands for newcomers (see README.md):
#   make image CONFIG=examples/control-plane.toml   build a golden image
#   make test                                       run every test tier
CONFIG ?= examples/control-plane.toml
CARGO ?= cargo
NODE_TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl

.PHONY: all image node stubs test fmt lint

all: image

# k8r-node is a static musl binary, one per architecture; `k8r build` finds
# them in target/<triple>/release/.
node:
	for t in $(NODE_TARGETS); do $(CARGO) build --release --locked -p k8r-node --target $$t || exit 1; done

# The validating kubeadm/kubectl/crictl/ctr stand-in the VM tier installs in
# its golden images, static like k8r-node (tests/src/bin/k8r-stub.rs).
stubs:
	for t in $(NODE_TARGETS); do $(CARGO) build --release --locked -p k8r-tests --no-default-features --bin k8r-stub --target $$t || exit 1; done

image: node
	$(CARGO) run --release --locked -p k8r-builder -- build --config $(CONFIG)

test: node stubs
	K8R_REQUIRE_ROOT_TESTS=$${K8R_REQUIRE_ROOT_TESTS:-auto} $(CARGO) test --workspace --locked

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
