"""`--engine ray`: the population run on a local two-CPU Ray (127.0.0.1) writes the same dataset
as `--engine local` (rows equal after sorting), in the same layout, with a manifest."""

from __future__ import annotations

import json

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
