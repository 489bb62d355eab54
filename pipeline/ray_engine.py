"""`--engine ray`: the population run on Ray Data, into the same dataset layout.

The parts of the run (PART_USERS users each, the parts `--resume` has not found) become a Ray
dataset; `map_batches` runs a callable class, `PartRanker`, that loads the world and checkpoint
once per actor and ranks one part per call with the same batch function as `--engine local`
(`population.rank_users`), writing the part file atomically into `out` (which every node must
reach: a shared path); the driver gathers the parts' stats and writes manifest.json. Ray is an
optional extra (`pip install -e ".[ray]"`); `RayOptions.address` joins a cluster, without it a
local one is started on 127.0.0.1. `RayOptions` also says how many actors run per node and the
CPUs and GPUs each one takes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import population as pop
from pipeline.params import FeedParams, params_from_dict
from pipeline.query import Resources

AUTH_HINT = (
    "If the cluster uses token authentication (`ray start` turns it on from Ray 2.59), give "
    "xfeed RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the file "
    "~/.ray/auth_token)"
)


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray run is: `address` of a cluster (None: start a local Ray),
    `actors_per_node` × the cluster's alive nodes actors (each loads the world and models once),
    each taking `cpus_per_actor` CPUs (fractional: on a 2-CPU machine two actors at 0.5 leave a
    CPU for Ray Data's read tasks) and `gpus_per_actor` GPUs (e.g. 0.25: four actors feed one
    GPU; 0: the actors compute on CPUs). `device` is what each actor computes on (as
    `--device`: auto, cpu or gpu); Ray shows an actor only the GPUs it is given, so `gpu`
    needs `gpus_per_actor` > 0 and `cpu` refuses GPUs it would hold unused."""

    address: str | None = None
    actors_per_node: int = 2
    cpus_per_actor: float = 0.5
    gpus_per_actor: float = 0.0
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.actors_per_node <= 1024:
            raise pop.PopulationError("--ray-actors-per-node must be 1 … 1024")
        if not (math.isfinite(self.cpus_per_actor) and 0 < self.cpus_per_actor <= 1024):
            raise pop.PopulationError("--ray-cpus-per-actor must be > 0 (fractions allowed)")
        if not (math.isfinite(self.gpus_per_actor) and 0 <= self.gpus_per_actor <= 64):
            raise pop.PopulationError("--ray-gpus-per-actor must be ≥ 0 (fractions allowed)")
        if self.device not in ("auto", "cpu", "gpu"):
            raise pop.PopulationError(f"--device {self.device}: must be auto, cpu or gpu")
        if self.device == "gpu" and not self.gpus_per_actor:
            raise pop.PopulationError(
                "--device gpu with --engine ray needs --ray-gpus-per-actor > 0 "
                "(Ray hides the GPUs from actors given none)"
            )
        if self.device == "cpu" and self.gpus_per_actor:
            raise pop.PopulationError(
                "--device cpu with --ray-gpus-per-actor > 0: the actors would hold GPUs they "
                "do not use"
            )


def _spec_dict(spec: pop.RunSpec) -> dict[str, Any]:
    """A RunSpec as plain data (what travels to the actors; no pickled objects of ours)."""
    return {"resources": dataclasses.asdict(spec.resources), "params": spec.params.to_dict(),
            "now_ms": spec.now_ms, "keep": spec.keep, "shard": list(spec.shard),
            "lenient": spec.lenient}  # fmt: skip


def _spec_from(d: dict[str, Any]) -> pop.RunSpec:
    params = params_from_dict(d["params"], FeedParams())
    return pop.RunSpec(Resources(**d["resources"]), params, int(d["now_ms"]), d["keep"],
                       tuple(d["shard"]), bool(d["lenient"]))  # fmt: skip


class PartRanker:
    """Ray Data callable class: one instance per actor, world and checkpoint loaded once."""

    def __init__(self, spec: dict[str, Any], out: str, device: str = "auto"):
        self.spec = _spec_from(spec)
        self.out = Path(out)
        from phoenix.device import select_device
        from pipeline import feed

        select_device(device)  # the GPU(s) Ray gave this actor, or its CPUs
        q = feed.new_query(0, self.spec.resources, self.spec.params, self.spec.now_ms)
        feed.build_pipeline(q)  # loads world, models, corpus once per actor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names, rows, users, stage_ms, removed = [], [], [], [], []
        for k, ids in zip(batch["part"].tolist(), batch["users"], strict=True):
            table, stats = pop.rank_users(np.asarray(ids, np.int64), self.spec)
            name = pop.part_name(self.spec, int(k))
            pop.write_part(self.out / name, table)
            names.append(name)
            rows.append(table.num_rows)
            users.append(stats["users"])
            stage_ms.append(repr(sorted(stats["stage_ms"].items())))
            removed.append(repr(sorted(stats["removed"].items())))
        return {"file": np.array(names), "rows": np.array(rows, np.int64),
                "users": np.array(users, np.int64), "stage_ms": np.array(stage_ms),
                "removed": np.array(removed)}  # fmt: skip


def run_population_ray(
    users: np.ndarray,
    spec: pop.RunSpec,
    out: Path | str,
    resume: bool = False,
    options: RayOptions = RayOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The population run on Ray Data (see the module docstring); returns the manifest."""
    try:
        import ray
    except ImportError as exc:
        raise pop.PopulationError('--engine ray needs Ray: pip install -e ".[ray]"') from exc
    out = Path(out).resolve()
    i, n = spec.shard
    users = users[pop.shard_of(users, n) == i] if n > 1 else users
    identity = pop.run_identity(spec, users)
    pop.prepare_out(out, identity, resume)
    parts = [(k, users[a : a + pop.PART_USERS]) for k, a in
             enumerate(range(0, len(users), pop.PART_USERS))]  # fmt: skip
    todo = [(k, u) for k, u in parts if not (resume and (out / pop.part_name(spec, k)).exists())]
    skipped = sum(len(u) for k, u in parts) - sum(len(u) for _, u in todo)
    started = False
    if not ray.is_initialized():
        per_node = options.actors_per_node
        local_cpus = max(per_node, math.ceil(per_node * options.cpus_per_actor) + 1)
        kwargs = (
            {"address": options.address}
            if options.address
            else {
                "num_cpus": local_cpus,
                "_node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            }  # fmt: skip
        )
        try:
            ray.init(**kwargs, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            if not options.address:
                raise
            raise pop.PopulationError(
                f"--ray-address {options.address}: {exc}. {AUTH_HINT}"
            ) from None
        started = True
    t0 = time.perf_counter()
    totals: dict[str, Any] = {"users": 0, "stage_ms": {}, "removed": {}, "errors": []}
    try:
        done = skipped
        if progress:
            progress(done, len(users))
        if todo:
            actors = _actors(ray, options)
            ds = ray.data.from_items([{"part": k, "users": u.tolist()} for k, u in todo])
            ds = ds.map_batches(
                PartRanker,
                fn_constructor_kwargs={
                    "spec": _spec_dict(spec),
                    "out": str(out),
                    "device": options.device,
                },  # fmt: skip
                batch_size=1,
                concurrency=min(actors, len(todo)),
                num_cpus=options.cpus_per_actor,  # fractional: read tasks not starved on 2 CPUs
                num_gpus=options.gpus_per_actor,
            )
            for row in ds.iter_rows():
                done += int(row["users"])
                totals["users"] += int(row["users"])
                for stage, ms in eval_pairs(row["stage_ms"]):
                    totals["stage_ms"][stage] = totals["stage_ms"].get(stage, 0.0) + ms
                for comp, count in eval_pairs(row["removed"]):
                    totals["removed"][comp] = totals["removed"].get(comp, 0) + int(count)
                if progress:
                    progress(done, len(users))
    finally:
        if started:
            ray.shutdown()
    elapsed = time.perf_counter() - t0
    return pop.finish(out, identity, [pop.part_name(spec, k) for k, _ in parts], totals, elapsed,
                      skipped, engine="ray")  # fmt: skip


def _actors(ray, options: RayOptions) -> int:
    """actors_per_node × the alive nodes; refuses more GPUs per actor than the cluster has
    (Ray would wait for them for ever)."""
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    gpus = ray.cluster_resources().get("GPU", 0)
    if options.gpus_per_actor > gpus:
        has = f"has {gpus:g}" if gpus else "has no GPU"
        raise pop.PopulationError(
            f"--ray-gpus-per-actor {options.gpus_per_actor:g}: the Ray cluster {has}"
        )
    return options.actors_per_node * max(nodes, 1)


def eval_pairs(text: str) -> list[tuple[str, float]]:
    """Parse the repr of a list of (str, float) pairs (no eval)."""
    import ast

    return [(str(a), float(b)) for a, b in ast.literal_eval(text)]
