"""A sweep of hostile and careless inputs through whole `xfeed` processes (issue #12's re-check).

`python -m benchmarks.hostile [--cases N] [--seed S] [--timeout 60] [--json] [--out F.json]`

Every case runs one `xfeed` command in a fresh process on a sandbox copy of the bundled world and
checkpoint (hard links; a mutated file is replaced, never written through) and checks the
promises of the README:

- the exit code is 0 (or the command's documented 1, e.g. `world check`) or 2;
- no traceback; an exit 2 says one `error: …` line (or click's one `Error: …` usage line);
- no hang (`--timeout`), peak RSS ≤ 2 GB (`os.wait4`'s `ru_maxrss` of the process);
- nothing in the sandbox changes except the case's own output path;
- JSON on stdout is valid JSON (no NaN/Infinity tokens).

The first cases run every command once on valid inputs (a peak-RSS table per command); the rest
are drawn with the seed from the classes of the issue: truncated, bit-flipped, emptied or
replaced files (world tables, `world.json`, the Thunder snapshot, checkpoints, configs, corpora,
candidate JSONL, weights TOML, user lists), hostile JSON values in configs and manifests,
out-of-range command-line values, and outputs aimed at existing directories, files and inputs.
Same seed, same cases. The report lists every failing case with its command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.hostile_cases import USER, Case, drawn_cases, env, valid_cases, xfeed

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
RSS_LIMIT_MB = 2048.0


@dataclass
class Result:
    name: str
    argv: list[str]
    rc: int
    seconds: float
    peak_rss_mb: float
    problems: list[str] = field(default_factory=list)
    error_line: str = ""
    stderr_tail: str = ""


# ---------------------------------------------------------------- sandbox


def _link_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=os.link)


def build_pristine(root: Path, xfeed: list[str]) -> None:
    """The inputs every case starts from: world, checkpoint, fake artifacts, JSONL, TOML."""
    shutil.copytree(SAMPLES / "world", root / "world")
    shutil.copytree(SAMPLES / "checkpoint", root / "ckpt")
    environ = env()
    run = lambda argv, **kw: subprocess.run(xfeed + argv, env=environ, cwd=root, check=True, **kw)  # noqa: E731
    run(["ckpt", "fake", "--out", "fake"], capture_output=True)
    with open(root / "retrieved.jsonl", "wb") as fh:
        run(["retrieve", "--user", USER, "--world", "world", "--checkpoint", "ckpt"], stdout=fh,
            stderr=subprocess.DEVNULL)  # fmt: skip
    with open(root / "scored.jsonl", "wb") as fh:
        run(["score", "--in", "retrieved.jsonl"],
            stdout=fh, stderr=subprocess.DEVNULL)  # fmt: skip
    run(["params", "--toml", "weights.toml"], capture_output=True)
    (root / "users.txt").write_text("1007\n2007\n3007\n")
    pop = ["rank", "--users", "users.txt", "--world", "world", "--checkpoint", "ckpt"]
    run([*pop, "--out", "run1"], capture_output=True)
    log = "user_id,item_id,timestamp,rating\n" + "".join(
        f"{u},{i},{1_500_000_000 + 3600 * (u * 7 + i)},{1 + (u + i) % 5}\n"
        for u in range(1, 21)
        for i in range(1, 16)
    )
    (root / "log.csv").write_text(log)


def _tree_digest(root: Path, skip: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            if skip is not None and p == skip:
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = h.hexdigest()
            else:
                out[rel] = "special"
    return out


# ---------------------------------------------------------------- running


def run_case(case: Case, pristine: Path, work: Path, rng: np.random.Generator,
             timeout: float) -> Result:  # fmt: skip
    """Run one case in a fresh sandbox under `work` and check every promise."""
    box = work / "box"
    if box.exists():
        shutil.rmtree(box)
    _link_tree(pristine, box)
    if case.mutate is not None:
        case.mutate(box, rng)
    skip = box / case.out if case.out else None
    before = _tree_digest(box, skip)
    out_f, err_f = work / "stdout", work / "stderr"
    t0 = time.perf_counter()
    with open(out_f, "wb") as so, open(err_f, "wb") as se:
        proc = subprocess.Popen(xfeed() + case.argv, cwd=box, env=env(), stdout=so, stderr=se,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        rc, rss_kb, hung = None, 0, False
        while rc is None:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc, rss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                proc.returncode = rc
                break
            if time.perf_counter() - t0 > timeout:
                hung = True
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.02)
    seconds = time.perf_counter() - t0
    stdout = out_f.read_bytes()
    stderr = err_f.read_text(errors="replace")
    res = Result(case.name, case.argv, rc, round(seconds, 2), round(rss_kb / 1024, 1))
    p = res.problems
    if hung:
        p.append(f"hung (killed after {timeout:.0f} s)")
    if rc not in case.allowed:
        p.append(f"exit {rc}")
    if "Traceback" in stderr:
        p.append("traceback")
    if rc == 2:
        lines = [ln for ln in stderr.splitlines() if ln.startswith(("error:", "Error:"))]
        if len(lines) != 1:
            p.append(f"{len(lines)} error lines")
        res.error_line = lines[0] if lines else ""
    if res.peak_rss_mb > RSS_LIMIT_MB:
        p.append(f"peak RSS {res.peak_rss_mb:.0f} MB")
    if rc == 0 and "--json" in case.argv and stdout.strip():
        for ln in stdout.decode(errors="replace").splitlines() if b"\n{" in stdout else [stdout]:
            try:
                json.loads(ln, parse_constant=_no_constant)
            except ValueError as e:
                p.append(f"stdout not JSON: {e}"[:120])
                break
    if p:
        res.stderr_tail = stderr[-1500:]
    after = _tree_digest(box, skip)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        p.append("changed outside the output: " + ", ".join(changed[:5]))
    return res


def _no_constant(token: str) -> float:
    raise ValueError(f"{token} in output")


def sweep(cases: int = 120, seed: int = 0, timeout: float = 60.0, progress=None) -> dict:
    """Build the sandbox, run the valid and drawn cases; returns the report (JSON-ready)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="xfeed-hostile-") as tmp:
        pristine, work = Path(tmp) / "pristine", Path(tmp) / "work"
        pristine.mkdir()
        work.mkdir()
        build_pristine(pristine, xfeed())
        pristine_digest = _tree_digest(pristine, None)
        todo = valid_cases() + drawn_cases(cases, rng)
        results = []
        for i, case in enumerate(todo):
            results.append(run_case(case, pristine, work, rng, timeout))
            if progress:
                progress(i + 1, len(todo), results[-1])
        if _tree_digest(pristine, None) != pristine_digest:
            results.append(Result("pristine inputs", [], 0, 0, 0, ["changed through a link"]))
    failing = [r for r in results if r.problems]
    valid = [r for r in results if r.name.startswith("valid:")]
    return {
        "seed": seed,
        "cases": len(results),
        "failing": len(failing),
        "exit_codes": {
            str(c): sum(r.rc == c for r in results) for c in sorted({r.rc for r in results})
        },
        "max_peak_rss_mb": max(r.peak_rss_mb for r in results),
        "valid_peak_rss_mb": {r.name[7:]: r.peak_rss_mb for r in valid},
        "failures": [r.__dict__ for r in failing],
        "results": [r.__dict__ for r in results],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=120, help="drawn cases besides the valid ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a case hangs")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    args = ap.parse_args()

    def progress(i: int, n: int, r: Result) -> None:
        mark = "FAIL " + "; ".join(r.problems) if r.problems else "ok"
        print(f"[{i}/{n}] {r.name}: exit {r.rc}, {r.seconds:.1f} s, {r.peak_rss_mb:.0f} MB, {mark}",
              file=sys.stderr, flush=True)  # fmt: skip

    report = sweep(args.cases, args.seed, args.timeout, progress)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=1))


if __name__ == "__main__":
    main()
