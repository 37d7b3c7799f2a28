# iap-proxy: `make demo` and `make test` are the two set-up commands (see README.md).
# Every target first installs missing Debian/Ubuntu packages (and says so when it does).

SWIFT ?= swift
SYSTEM_PACKAGES := libssl-dev libcurl4-openssl-dev pkg-config
DEPS := scripts/install-deps.sh $(SYSTEM_PACKAGES)

.PHONY: deps build test test-unit test-tsan demo bench-verify clean

deps:
	@$(DEPS)

## Release build of the iap-proxy binary (.build/release/iap-proxy).
build: deps
	$(SWIFT) build -c release --product iap-proxy

## The full suite: unit, vector and subprocess tests, then the concurrency tests under TSan.
test: test-unit test-tsan

test-unit: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## Shared OpenSSL keys, the key store and the refresher under ThreadSanitizer.
test-tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter 'SharedKeyTests|KeySourceTests'

## Mint a local key and token and verify it end to end, printing each step.
demo: deps
	@scripts/demo.sh

## Verifications per second (fresh token each time) beside `openssl speed ecdsap256`.
bench-verify: deps
	bench/verify.sh

clean:
	rm -rf .build .build-tsan demo-keys
