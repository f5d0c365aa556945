.PHONY: test demo bench bench-quick

# The test suite: ruff, then pytest (extra pytest arguments: make test ARGS="-k eval").
test:
	scripts/test $(ARGS)

# Index the sample vault and answer a question.
demo:
	scripts/demo

# Every benchmark (median of 3 runs each); rewrites docs/benchmarks.md. Takes about an hour.
bench:
	.venv/bin/python bench/run_all.py

# The whole benchmark chain on small sizes, printed only (a smoke test, a few minutes).
bench-quick:
	.venv/bin/python bench/run_all.py --quick
