"""Phoenix checkpoints: load, save, convert, inspect, diff, fake, pull.

Both on-disk formats (upstream `oss-phoenix-artifacts` npz and xfeed's safetensors) are described
in `checkpoints.formats`; corpora in `checkpoints.corpus`.
"""
