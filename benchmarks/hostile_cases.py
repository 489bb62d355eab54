"""The cases of the hostile-input sweep (`benchmarks/hostile.py`): file mutations, hostile JSON
and JSONL values, out-of-range command-line values, output-path hazards, and every command once on
valid inputs. A case is a command line plus a mutation of the sandbox; drawn cases come from a
seeded generator (same seed, same cases)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

USER = "1007"


@dataclass
class Case:
    """One command on one (possibly mutated) sandbox; `out` is the path it may write."""

    name: str
    argv: list[str]
    mutate: Callable[[Path, np.random.Generator], None] | None = None
    out: str | None = None
    allowed: tuple[int, ...] = (0, 2)
    stdin: str | None = None


def env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.pop("XFEED_DEBUG", None)
    env["COLUMNS"] = "200"
    return env


def xfeed() -> list[str]:
    exe = Path(sys.executable).parent / "xfeed"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "xfeed_cli.main"]


# ---------------------------------------------------------------- mutations


def _replace(path: Path, data: bytes) -> None:
    """Write `data` as a new file at `path` (a hard link to the pristine copy is cut first)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)


def truncate(rel: str) -> Callable[[Path, np.random.Generator], None]:
    def m(box: Path, rng: np.random.Generator) -> None:
        data = (box / rel).read_bytes()
        _replace(box / rel, data[: int(rng.integers(0, max(1, len(data))))])

    return m


def flip(rel: str, n: int) -> Callable[[Path, np.random.Generator], None]:
    def m(box: Path, rng: np.random.Generator) -> None:
        data = bytearray((box / rel).read_bytes())
        if not data:
            return
        for where in rng.integers(0, len(data), size=n):
            data[int(where)] ^= int(rng.integers(1, 256))
        _replace(box / rel, bytes(data))

    return m


def edge_flip(rel: str, tail: bool) -> Callable[[Path, np.random.Generator], None]:
    """Damage 1–3 bytes near an end: in the first 4 KiB (headers, offsets, JSON keys: set to a
    telling byte) or in the last 2 KiB (Parquet's footer and its metadata: bits flipped)."""

    def m(box: Path, rng: np.random.Generator) -> None:
        data = bytearray((box / rel).read_bytes())
        if not data:
            return
        for _ in range(int(rng.integers(1, 4))):
            if tail:
                i = len(data) - 1 - int(rng.integers(0, min(len(data), 2048)))
                data[i] ^= int(rng.integers(1, 256))
            else:
                i = int(rng.integers(0, min(len(data), 4096)))
                data[i] = int(rng.choice([0x00, 0xFF, 0x7F, 0x2D, 0x39, 0x22, 0x5B]))
        _replace(box / rel, bytes(data))

    return m


def replace_with(rel: str, kind: str) -> Callable[[Path, np.random.Generator], None]:
    def m(box: Path, rng: np.random.Generator) -> None:
        p = box / rel
        _replace(p, b"")
        if kind == "empty":
            return
        p.unlink()
        if kind == "dir":
            p.mkdir()
            (p / "x").write_text("x")
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "missing":
            pass
        elif kind == "devzero":
            p.symlink_to("/dev/zero")
        elif kind == "random":
            p.write_bytes(
                rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
            )

    return m


HOSTILE_JSON = [
    "abc", -1, 0, 1e30, 10**30, -(10**30), [1, 2], None, {"a": 1}, True, 0.5, "", 2**63,
    "NaN", [[[[[]]]]],
]  # fmt: skip


def json_value(rel: str) -> Callable[[Path, np.random.Generator], None]:
    """Set one random key (at any depth) of a JSON object file to a hostile value."""

    def m(box: Path, rng: np.random.Generator) -> None:
        doc = json.loads((box / rel).read_text())
        paths: list[list] = []

        def walk(node, path):
            if isinstance(node, dict):
                for k, v in node.items():
                    paths.append(path + [k])
                    walk(v, path + [k])
            elif isinstance(node, list):
                for i, v in enumerate(node[:4]):
                    paths.append(path + [i])
                    walk(v, path + [i])

        walk(doc, [])
        target = paths[int(rng.integers(0, len(paths)))]
        node = doc
        for k in target[:-1]:
            node = node[k]
        node[target[-1]] = HOSTILE_JSON[int(rng.integers(0, len(HOSTILE_JSON)))]
        _replace(box / rel, json.dumps(doc).encode())

    return m


def json_root(rel: str) -> Callable[[Path, np.random.Generator], None]:
    def m(box: Path, rng: np.random.Generator) -> None:
        roots = [b"[]", b"null", b"1", b'"x"', b"{", b"[" * 100_000, b"{}", b"NaN"]
        _replace(box / rel, roots[int(rng.integers(0, len(roots)))])

    return m


JSONL_VALUES = [
    '"yesterday"', '"abc"', "NaN", "Infinity", "-Infinity", "1" + "0" * 40, "1" + "0" * 5000,
    "[1,2]", "{}", "null", "-5", "1e400", '"' + "9" * 30 + '"', "[" * 10_000 + "]" * 10_000,
]  # fmt: skip


def jsonl_field(rel: str) -> Callable[[Path, np.random.Generator], None]:
    """Set one top-level field of one candidate line to a hostile token."""

    def m(box: Path, rng: np.random.Generator) -> None:
        lines = (box / rel).read_text().splitlines()
        i = int(rng.integers(0, len(lines)))
        obj = json.loads(lines[i])
        keys = list(obj)
        key = keys[int(rng.integers(0, len(keys)))]
        token = JSONL_VALUES[int(rng.integers(0, len(JSONL_VALUES)))]
        obj[key] = "__HOSTILE__"
        lines[i] = json.dumps(obj).replace('"__HOSTILE__"', token)
        _replace(box / rel, ("\n".join(lines) + "\n").encode())

    return m


def out_hazard(kind: str, out: str) -> Callable[[Path, np.random.Generator], None]:
    """Prepare the output path: a stranger's directory, a file, a symlink to the inputs."""

    def m(box: Path, rng: np.random.Generator) -> None:
        p = box / out
        if kind == "foreign_dir":
            p.mkdir(parents=True, exist_ok=True)
            (p / "thesis.tex").write_text("years of work\n")
        elif kind == "file":
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("not xfeed's\n")
        elif kind == "link_to_world":
            p.parent.mkdir(parents=True, exist_ok=True)
            p.symlink_to(box / "world")
        elif kind == "empty_dir":
            p.mkdir(parents=True, exist_ok=True)

    return m


# ---------------------------------------------------------------- the cases

W = ["--world", "world", "--checkpoint", "ckpt"]
RANK = ["rank", "--user", USER, *W, "--json"]


def valid_cases() -> list[Case]:
    """Every command once on valid inputs (the peak-RSS table)."""
    return [
        Case("valid: rank --user", RANK),
        Case("valid: rank --users all", ["rank", "--users", "all", *W, "--out", "o"], out="o"),
        Case("valid: rank --arm chrono", RANK + ["--arm", "chrono"]),
        Case("valid: retrieve", ["retrieve", "--user", USER, *W, "-o", "o"], out="o"),
        Case("valid: filter", ["filter", "--in", "retrieved.jsonl", "-o", "o"], out="o"),
        Case("valid: score", ["score", "--in", "retrieved.jsonl", "-o", "o"], out="o"),
        Case("valid: select", ["select", "--in", "scored.jsonl", "-o", "o"], out="o"),
        Case("valid: post-filter", ["post-filter", "--in", "scored.jsonl", "-o", "o"], out="o"),
        Case("valid: explain", ["explain", "--user", USER, *W, "--top", "3"]),
        Case(
            "valid: whatif", ["whatif", "--user", USER, *W, "--weights", "weights.toml", "--json"]
        ),
        Case(
            "valid: whatif --users",
            ["whatif", "--users", "users.txt", *W, "--checkpoint-b", "ckpt", "--out", "o"],
            out="o",
        ),
        Case("valid: params", ["params", "--weights", "weights.toml", "--json"]),
        Case("valid: data synth", ["data", "synth", "--out", "o", "--users", "50"], out="o"),
        Case(
            "valid: world import",
            ["world", "import", "log.csv", "--out", "o", "--rating-col", "rating"],
            out="o",
        ),  # fmt: skip
        Case("valid: world info", ["world", "info", "world", "--json"]),
        Case("valid: world users", ["world", "users", "world", "--json", "--limit", "5"]),
        Case("valid: world check", ["world", "check", "world", "--json"]),
        Case(
            "valid: thunder build",
            ["thunder", "build", "--posts", "world/posts.parquet", "--out", "o"],
            out="o",
        ),  # fmt: skip
        Case("valid: thunder stats", ["thunder", "stats", "world/thunder", "--json"]),
        Case(
            "valid: index build",
            [
                "index",
                "build",
                "--checkpoint",
                "ckpt",
                "--world",
                "world",
                "--out",
                "o.safetensors",
            ],
            out="o.safetensors",
        ),  # fmt: skip
        Case("valid: eval", ["eval", "--checkpoint", "ckpt", "--world", "world", "--json"]),
        Case(
            "valid: train ranker",
            [
                "train",
                "ranker",
                "--world",
                "world",
                "--preset",
                "tiny",
                "--out",
                "o",
                "--steps",
                "3",
            ],
            out="o",
        ),  # fmt: skip
        Case("valid: ckpt inspect", ["ckpt", "inspect", "ckpt", "--json"]),
        Case("valid: ckpt diff", ["ckpt", "diff", "ckpt", "ckpt", "--json"], allowed=(0, 1)),
        Case("valid: ckpt convert", ["ckpt", "convert", "fake", "o", "--to", "xfeed"], out="o"),
        Case("valid: ckpt fake", ["ckpt", "fake", "--out", "o"], out="o"),
        Case("valid: phoenix retrieve", ["phoenix", "retrieve", "--artifacts", "fake", "--json"]),
        Case("valid: phoenix rank", ["phoenix", "rank", "--artifacts", "fake", "--json"]),
        Case("valid: audit", ["audit", "o1"], mutate=_population_run("o1"), out=None),
    ]


def _population_run(name: str) -> Callable[[Path, np.random.Generator], None]:
    def m(box: Path, rng: np.random.Generator) -> None:
        subprocess.run(xfeed() + ["rank", "--users", "users.txt", *W, "--out", name], cwd=box,
                       env=env(), check=True, capture_output=True)  # fmt: skip

    return m


WORLD_READERS = [
    RANK,
    ["world", "info", "world"],
    ["world", "users", "world", "--json"],
    ["world", "check", "world"],
    ["rank", "--users", "all", *W, "--out", "o"],
]
RUN = "run1/part-0000-of-0001-00000.parquet"
FILE_TARGETS: dict[str, list[list[str]]] = {
    # file → the commands that read it
    "world/users.parquet": WORLD_READERS,
    "world/posts.parquet": WORLD_READERS + [["thunder", "build", "--posts",
                                             "world/posts.parquet", "--out", "o"]],
    "world/edges.parquet": WORLD_READERS,
    "world/engagements.parquet": WORLD_READERS + [["eval", "--checkpoint", "ckpt", "--world",
                                                   "world"]],
    "world/impressions.parquet": WORLD_READERS,
    "world/world.json": WORLD_READERS,
    "world/corpus.safetensors": [RANK],
    "world/thunder/manifest.json": [RANK, ["thunder", "stats", "world/thunder"]],
    "world/thunder/entries.arrow": [RANK, ["thunder", "stats", "world/thunder"]],
    "world/thunder/fetch_index.arrow": [RANK],
    "world/thunder/posts.arrow": [RANK],
    "ckpt/ranker/config.json": [RANK, ["ckpt", "inspect", "ckpt"]],
    "ckpt/ranker/model.safetensors": [RANK, ["ckpt", "inspect", "ckpt"]],
    "ckpt/ranker/embeddings.safetensors": [RANK, ["ckpt", "diff", "ckpt", "fake"]],
    "ckpt/retrieval/config.json": [RANK],
    "ckpt/retrieval/model.safetensors": [RANK, ["index", "build", "--checkpoint", "ckpt",
                                                "--world", "world", "--out", "o"]],
    "fake/ranker/config.json": [["phoenix", "rank", "--artifacts", "fake", "--json"]],
    "fake/ranker/model_params.npz": [["phoenix", "rank", "--artifacts", "fake", "--json"],
                                     ["ckpt", "convert", "fake", "o", "--to", "xfeed"]],
    "fake/retrieval/embedding_tables.npz": [["phoenix", "retrieve", "--artifacts", "fake"]],
    "retrieved.jsonl": [["filter", "--in", "retrieved.jsonl"], ["score", "--in", "retrieved.jsonl"],
                        ["hydrate", "--in", "retrieved.jsonl"]],
    "scored.jsonl": [["select", "--in", "scored.jsonl"], ["post-filter", "--in", "scored.jsonl"]],
    "weights.toml": [RANK + ["--weights", "weights.toml"], ["params", "--weights", "weights.toml"]],
    "users.txt": [["rank", "--users", "users.txt", *W, "--out", "o"]],
    "log.csv": [["world", "import", "log.csv", "--out", "o", "--rating-col", "rating"]],
    RUN: [["audit", "run1", "--json"], ["rank", "--users", "users.txt", *W, "--out", "run1",
                                        "--resume"]],
    "run1/manifest.json": [["audit", "run1"], ["rank", "--users", "users.txt", *W, "--out",
                                               "run1", "--resume"]],
}  # fmt: skip

CLI_VALUES: list[list[str]] = [
    ["rank", "--user", v, *W] for v in ["100000000000000000000", "-1", "0", "abc", "1e3", "99999"]
] + [
    RANK + ["--now", v] for v in ["99999999999999999999", "-5", "abc", "0", "1e30", "2300-01-01"]
] + [
    RANK + ["--top-k", v] for v in ["0", "-1", "1000000000000", "x"]
] + [
    ["data", "synth", "--out", "o", "--users", v] for v in ["1000000000", "0", "-3", "1e9"]
] + [
    ["data", "synth", "--out", "o", "--users", "20", "--days", v] for v in ["0", "1000000", "-1"]
] + [
    ["data", "synth", "--out", "o", "--users", "20", "--posts-per-user", "1000000000"],
    ["ckpt", "fake", "--out", "o", "--vocab", "1000000000000"],
    ["ckpt", "fake", "--out", "o", "--vocab", "0"],
    ["train", "ranker", "--world", "world", "--preset", "tiny", "--out", "o", "--steps", "1"],
    ["train", "ranker", "--world", "world", "--preset", "tiny", "--out", "o", "--steps", "0"],
    ["train", "ranker", "--world", "world", "--preset", "tiny", "--out", "o", "--batch-size",
     "1000000000"],
    ["train", "ranker", "--world", "world", "--preset", "nope", "--out", "o"],
    ["rank", "--users", "all", *W, "--out", "o", "--shard", "3/2"],
    ["rank", "--users", "all", *W, "--out", "o", "--shard", "0/0"],
    ["rank", "--users", "1007,abc", *W, "--out", "o"],
    ["rank", "--users", "99999999", *W, "--out", "o"],
    ["thunder", "build", "--posts", "world/posts.parquet", "--out", "o", "--retention", "-1d"],
    ["eval", "--checkpoint", "missing", "--world", "world"],
    ["audit", "missing"],
    ["rank", "--user", USER, "--world", "missing"],
    ["rank", "--user", USER, "--world", "world/users.parquet"],
    ["rank", "--user", USER, *W, "--weights", "world"],
    ["select", "--in", "world"],
    ["select", "--in", "/dev/zero"],
]  # fmt: skip

OUT_COMMANDS: list[tuple[list[str], str]] = [
    (["thunder", "build", "--posts", "world/posts.parquet", "--out", "o"], "o"),
    (["data", "synth", "--out", "o", "--users", "30"], "o"),
    (["ckpt", "fake", "--out", "o"], "o"),
    (["ckpt", "convert", "fake", "o", "--to", "xfeed"], "o"),
    (["rank", "--users", "users.txt", *W, "--out", "o"], "o"),
    (["retrieve", "--user", USER, *W, "-o", "o"], "o"),
    (["params", "--toml", "o"], "o"),
    (["world", "import", "log.csv", "--out", "o", "--rating-col", "rating"], "o"),
    (["index", "build", "--checkpoint", "ckpt", "--world", "world", "--out", "o"], "o"),
]  # fmt: skip


def drawn_cases(n: int, rng: np.random.Generator) -> list[Case]:
    """`n` cases drawn with `rng` from the file, JSON, value and output classes."""
    cases: list[Case] = []
    targets = sorted(FILE_TARGETS)
    for i in range(n):
        kind = rng.choice(["file", "file", "file", "json", "jsonl", "value", "out"])
        if kind == "file":
            rel = targets[int(rng.integers(0, len(targets)))]
            how = rng.choice(["truncate", "flip", "head", "tail", "empty", "dir", "fifo",
                              "missing", "random", "devzero"])  # fmt: skip
            mut = {
                "truncate": truncate(rel), "flip": flip(rel, int(rng.integers(1, 16))),
                "head": edge_flip(rel, False), "tail": edge_flip(rel, True),
            }.get(str(how)) or replace_with(rel, str(how))  # fmt: skip
            cmds = FILE_TARGETS[rel]
            argv = cmds[int(rng.integers(0, len(cmds)))]
            out = "o" if "o" in argv else "run1" if "--resume" in argv else None
            cases.append(Case(f"{how} {rel}", argv, mut, out=out))
        elif kind == "json":
            rel = str(rng.choice(["world/world.json", "ckpt/ranker/config.json",
                                  "ckpt/retrieval/config.json", "world/thunder/manifest.json",
                                  "fake/ranker/config.json"]))  # fmt: skip
            mut = json_value(rel) if rng.random() < 0.8 else json_root(rel)
            argv = FILE_TARGETS[rel][0]
            cases.append(Case(f"json {rel}", argv, mut))
        elif kind == "jsonl":
            rel = str(rng.choice(["retrieved.jsonl", "scored.jsonl"]))
            cmds = FILE_TARGETS[rel]
            cases.append(Case(f"jsonl {rel}", cmds[int(rng.integers(0, len(cmds)))],
                              jsonl_field(rel)))  # fmt: skip
        elif kind == "value":
            argv = CLI_VALUES[int(rng.integers(0, len(CLI_VALUES)))]
            cases.append(Case("value " + " ".join(argv[:2]), argv, out="o"))
        else:
            argv, out = OUT_COMMANDS[int(rng.integers(0, len(OUT_COMMANDS)))]
            hazard = str(rng.choice(["foreign_dir", "file", "link_to_world", "empty_dir"]))
            writable = out if hazard == "empty_dir" else None  # an empty directory may be used
            name = f"out {hazard} {argv[0]} {argv[1]}"
            cases.append(Case(name, argv, out_hazard(hazard, out), writable))
        cases[-1].name = f"{i:03d} {cases[-1].name}"
        if cases[-1].argv[:2] in (["world", "check"], ["ckpt", "diff"]):
            cases[-1].allowed = (0, 1, 2)  # documented: 1 = unusable world / beyond --atol
    return cases
