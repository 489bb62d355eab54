"""Shared fixtures: tiny configs, random checkpoints, fake artifacts, a CLI runner."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the suite runs on CPU; GPU tests opt in
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("XFEED_COMPILE_CACHE", "0")  # no writes to ~/.cache; test_startup opts in

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from checkpoints.fake import fake_checkpoint, random_tables, write_fake_artifacts  # noqa: E402
from phoenix.config import ModelType, PhoenixConfig, Preset  # noqa: E402
from phoenix.params import random_params  # noqa: E402
from phoenix.runtime import PhoenixCheckpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
UPSTREAM = REPO / "tests" / "fixtures" / "upstream"  # copies, see ORIGIN.md there
TINY_VOCAB = 64


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    if os.environ.get("JAX_PLATFORMS") == "cpu" or not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU visible to JAX")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """Exact copies of the upstream mini checkpoint's small files (tests/fixtures/upstream)."""
    if not UPSTREAM.exists():
        pytest.fail(f"reference files missing: {UPSTREAM}")
    return UPSTREAM


def tiny_config(model_type: str = "ranker", **changes) -> PhoenixConfig:
    """Upstream's unit-test architecture (64 / 1 layer / 2 heads / key 32), tiny vocab."""
    cfg = Preset.TEST.config(model_type, vocab=TINY_VOCAB)
    return cfg.replace(**changes) if changes else cfg


def tiny_checkpoint(model_type: str = "ranker", seed: int = 0, **changes) -> PhoenixCheckpoint:
    cfg = tiny_config(model_type, **changes)
    rng = np.random.default_rng(seed)
    return PhoenixCheckpoint(
        cfg, random_params(cfg, seed), random_tables(TINY_VOCAB, cfg.emb_size, rng)
    )


@pytest.fixture
def tiny_ranker_ckpt() -> PhoenixCheckpoint:
    return tiny_checkpoint("ranker", fprop_dtype="float32")


@pytest.fixture
def tiny_retrieval_ckpt() -> PhoenixCheckpoint:
    return tiny_checkpoint("retrieval", seed=1, fprop_dtype="float32")


@pytest.fixture(scope="session")
def fake_artifacts(tmp_path_factory) -> Path:
    """A fake mini checkpoint in upstream's exact layout (small vocab and corpus)."""
    out = tmp_path_factory.mktemp("artifacts") / "fake"
    return write_fake_artifacts(out, vocab=300, seed=3, corpus_size=300, history_len=20)


@pytest.fixture(scope="session")
def mini_ranker_ckpt() -> PhoenixCheckpoint:
    return fake_checkpoint(ModelType.RANKER, vocab=200, seed=5)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


POST_LOG_FIELDS = {
    "event": "string", "event_ms": "int64", "post_id": "int64", "author_id": "int64",
    "created_ms": "int64", "in_reply_to_post_id": "int64", "in_reply_to_user_id": "int64",
    "conversation_id": "int64", "source_post_id": "int64", "source_user_id": "int64",
    "quoted_post_id": "int64", "quoted_user_id": "int64", "video_duration_ms": "int32",
    "has_media": "bool", "subscription_only": "bool", "text": "string",
}  # fmt: skip


def write_post_log(path, events: list[dict]) -> Path:
    """A posts.parquet (data.md schema) from event dicts; absent or 0 optional ids -> null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {}
    for name, typ in POST_LOG_FIELDS.items():
        values = [ev.get(name) for ev in events]
        if name.endswith("_id") and name not in ("post_id", "author_id"):
            values = [v or None for v in values]
        if name == "video_duration_ms":
            values = [v or None for v in values]
        cols[name] = pa.array(values, type=typ)
    pq.write_table(pa.table(cols), path)
    return Path(path)


PLANT_SEED, PLANT_USERS, PLANT_DAYS = 5, 240, 1.5


@pytest.fixture(scope="session")
def planted_worlds(tmp_path_factory) -> dict[str, Path]:
    """A tiny control world and the same world with a planted follow bias (accounts whose
    primary topic is music followed 3× as often), and their chronological population runs."""
    from pipeline import feed
    from pipeline import population as pop
    from pipeline.params import FeedParams
    from pipeline.query import Resources
    from world.synth import SynthConfig, synth_world

    root = tmp_path_factory.mktemp("planted")
    out = {}
    for name, plant in (("control", None), ("planted", "follow:music:3")):
        world = root / name
        synth_world(world, SynthConfig(users=PLANT_USERS, seed=PLANT_SEED, days=PLANT_DAYS,
                                       plant_bias=plant))  # fmt: skip
        res = Resources(world=str(world), checkpoint=feed.BUNDLED.checkpoint, snapshot=None,
                        corpus=None)  # fmt: skip
        spec = pop.RunSpec(res, FeedParams(arm="chrono"), pop.request_time(str(world), None))
        pop.run_population(pop.world_user_ids(str(world)), spec, root / f"{name}-chrono")
        out[name], out[f"{name}-chrono"] = world, root / f"{name}-chrono"
    return out


@pytest.fixture(scope="session")
def sid_world(tmp_path_factory) -> tuple[Path, Path]:
    """(a 30-user synthetic world, a checkpoint dir whose models read post semantic ids: the
    ranker with the synthetic defaults (SIDs on), retrieval with one level; 3 steps each,
    history 8; the corpus built into the world)."""
    import dataclasses  # noqa: PLC0415

    from training.trainer import default_train_config, train_model  # noqa: PLC0415
    from world.corpus import build_corpus  # noqa: PLC0415
    from world.synth import SynthConfig, synth_world  # noqa: PLC0415

    root = tmp_path_factory.mktemp("sid")
    synth_world(root / "w", SynthConfig(users=30, seed=4))
    tc = dataclasses.replace(default_train_config("ranker"), steps=3, batch_size=4)
    train_model("ranker", root / "w", root / "ck", train_config=tc, history=8)
    tc = dataclasses.replace(default_train_config("retrieval"), steps=3, batch_size=4)
    train_model("retrieval", root / "w", root / "ck", train_config=tc, history=8, sid_levels=1)
    build_corpus(root / "ck", root / "w", root / "w" / "corpus.safetensors")
    return root / "w", root / "ck"
