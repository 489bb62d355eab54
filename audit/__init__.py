"""Audits of population runs (arms): per-arm metrics, amplification and overlap against a
baseline, author groups and viewer segments, bootstrap intervals over users, plots and an HTML
report. Reads `xfeed rank --users … --out DIR` datasets (pyarrow, streamed)."""
