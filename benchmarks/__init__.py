"""`xfeed bench`: ranking, retrieval, Thunder, end-to-end and checkpoint-loading benchmarks.

Each `bench_*` function returns a `Report`; the CLI renders it. Nothing here asserts a target:
benchmarks measure, the README states the figures with the command that produced them.
"""
