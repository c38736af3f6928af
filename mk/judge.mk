# judge (plugin/judge): Rust tests run in `cargo test --workspace`; this adds the judge benchmark.
.PHONY: bench-judge
bench-judge:
	$(CARGO) bench -p sandcanary-judge --bench judge_time
BENCH_TARGETS += bench-judge
