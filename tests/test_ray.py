"""`--engine ray`: the population run on a local two-CPU Ray (127.0.0.1) writes the same dataset
as `--engine local` (rows equal after sorting), in the same layout, with a manifest."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import feed
from pipeline import population as pop

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[ray]'")

USERS = np.array([1007, 5007, 9007], np.int64)


def _sorted(path):
    table = pq.read_table(sorted(path.glob("part-*.parquet")))
    keys = [("viewer_id", "ascending"), ("stage", "ascending"), ("post_id", "ascending")]
    return table.sort_by(keys)


def test_ray_engine_writes_the_local_dataset(tmp_path, monkeypatch):
    from pipeline.ray_engine import RayOptions, run_population_ray

    monkeypatch.setattr(pop, "PART_USERS", 2)  # two parts: both actors get work
    r = feed.BUNDLED
    spec = pop.RunSpec(r, feed.FeedParams(), pop.request_time(r.world, None), "scored")
    local = tmp_path / "local"
    pop.run_population(USERS, spec, local)
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False)  # fmt: skip
    try:
        options = RayOptions(actors_per_node=2, cpus_per_actor=0.5, device="cpu")
        manifest = run_population_ray(USERS, spec, tmp_path / "ray", options=options)
        with pytest.raises(pop.PopulationError, match="has no GPU"):  # would wait for ever
            run_population_ray(USERS, spec, tmp_path / "gpu", options=RayOptions(gpus_per_actor=1))
    finally:
        ray.shutdown()
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == sorted(
        p.name for p in local.glob("part-*")
    )
    assert _sorted(tmp_path / "ray").equals(_sorted(local))
    assert manifest["engine"] == "ray" and manifest["counts"]["users"] == len(USERS)
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["parts"]


@pytest.mark.parametrize(
    "bad",
    [
        {"actors_per_node": 0},
        {"cpus_per_actor": 0.0},
        {"cpus_per_actor": float("nan")},
        {"gpus_per_actor": -1.0},
        {"device": "gpu"},  # no GPU given to the actors: Ray hides them
        {"device": "cpu", "gpus_per_actor": 1.0},  # GPUs held unused
        {"device": "tpu"},
    ],  # fmt: skip
)
def test_ray_options_refuse_impossible_sizes(bad):
    from pipeline.ray_engine import RayOptions

    with pytest.raises(pop.PopulationError):
        RayOptions(**bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_address_joins_a_cluster_started_by_ray_start(tmp_path):
    """A real head (`ray start --head`, its own process group, token authentication as Ray
    ≥ 2.59 starts one) on this machine; `xfeed rank --engine ray --ray-address` joins it and
    writes the local engine's dataset."""
    ray_cli = Path(sys.executable).parent / "ray"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = _free_port()
    short = Path(tempfile.mkdtemp(prefix="xr", dir="/tmp"))  # Ray's socket paths must be short
    log = tmp_path / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
             f"--temp-dir={short}", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        users = ",".join(str(u) for u in USERS[:2])
        cmd = [sys.executable, "-c", "from xfeed_cli.entry import run; run()", "rank",
               "--users", users, "--keep", "scored", "--engine", "ray", "--ray-address",
               f"127.0.0.1:{port}", "--out", str(tmp_path / "ray")]  # fmt: skip
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head, its GCS, raylet and workers
        head.wait()
        shutil.rmtree(short, ignore_errors=True)
    r = feed.BUNDLED
    spec = pop.RunSpec(r, feed.FeedParams(), pop.request_time(r.world, None), "scored")
    pop.run_population(USERS[:2], spec, tmp_path / "local")
    assert _sorted(tmp_path / "ray").equals(_sorted(tmp_path / "local"))
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["engine"] == "ray"
