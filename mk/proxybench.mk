# proxybench: the sandcanary-proxy benchmarks (docs/benchmarks/proxy.md). `make bench` installs nginx-light
# and wrk (scripts/setup-system.sh --bench) before it runs BENCH_TARGETS.
#   bench-proxy             all six, in order (about 7-9 minutes on 2 cores)
#   bench-proxy-ws-rtt      1. WebSocket round trip, proxied vs direct
#   bench-proxy-playwright  2+3. warm Playwright session proxied vs direct; cold (warm pool) vs warm
#   bench-proxy-http        4. HTTP rps and p99: proxy vs nginx vs direct (wrk)
#   bench-proxy-ws-memory   5. RSS per idle WebSocket with 10,000 open (proxy and nginx)
#   bench-proxy-admission   6. fair admission on vs off on the uncontended path (BENCHMARKS.md)
# Builds run at low priority; the measurements do not (a niced cargo would pass its nice value on).
# Set PROXYBENCH_NICE=-10 (needs CAP_SYS_NICE) to run the measured processes above other work.
PROXYBENCH_CARGO := $(CARGO) bench -p sandcanary-proxy
PROXYBENCH_PROXY_BIN := $(CARGO_TARGET_DIR)/release/sandcanary-proxy

.PHONY: bench-proxy bench-proxy-build bench-proxy-ws-rtt bench-proxy-playwright bench-proxy-http bench-proxy-ws-memory bench-proxy-admission
BENCH_TARGETS += bench-proxy

bench-proxy: bench-proxy-ws-rtt bench-proxy-playwright bench-proxy-http bench-proxy-ws-memory bench-proxy-admission

# Builds the four Rust bench binaries and, with them, the optimized proxy binary they run
# ($(CARGO_TARGET_DIR)/release/sandcanary-proxy, also what the Playwright bench starts). A separate
# `cargo build --release` would build it with other dependency features and rebuild every time.
bench-proxy-build:
	nice $(PROXYBENCH_CARGO) --bench ws_rtt --bench http_load --bench ws_memory --bench admission --no-run

bench-proxy-ws-rtt: bench-proxy-build
	$(PROXYBENCH_CARGO) --bench ws_rtt

bench-proxy-playwright: bench-proxy-build
	node bench/proxy/playwright-session.js --proxy $(PROXYBENCH_PROXY_BIN)

bench-proxy-http: bench-proxy-build
	$(PROXYBENCH_CARGO) --bench http_load

bench-proxy-ws-memory: bench-proxy-build
	$(PROXYBENCH_CARGO) --bench ws_memory

bench-proxy-admission: bench-proxy-build
	$(PROXYBENCH_CARGO) --bench admission
