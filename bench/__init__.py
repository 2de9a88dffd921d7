"""Benchmarks of issue 3 item 7: `python -m bench.run [--quick]` prints a markdown table."""
