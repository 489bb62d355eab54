"""Upstream's own demo flow (run_pipeline: retrieval, then chunked ranking) over its artifacts."""
