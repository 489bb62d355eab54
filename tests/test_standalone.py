"""The repository stands alone: nothing in the suite, the code, the README or `--help` reads or
points to files outside it (such as a sibling `shared/` folder); the spec files the README
names are in the repository."""

from __future__ import annotations

import re

from tests.conftest import REPO

OUTSIDE = re.compile(r"\.\./shared|shared/specs|parent\s*/\s*\"shared\"|\.parent\.parent\.parent")


def _text_files():
    for pkg in ("tests", "xfeed_cli", "phoenix", "pipeline", "world", "training", "thunder",
                "filters", "checkpoints", "upstream", "benchmarks", "safeio"):  # fmt: skip
        yield from (REPO / pkg).rglob("*.py")
    yield REPO / "README.md"
    yield REPO / "pyproject.toml"


def test_nothing_points_outside_the_repository():
    me = REPO / "tests" / "test_standalone.py"
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for p in _text_files()
        if p != me
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits


def test_specs_the_readme_names_are_in_the_repository():
    readme = (REPO / "README.md").read_text()
    names = set(re.findall(r"\b(\w+_spec\.md|data\.md)\b", readme))
    assert {"phoenix_spec.md", "homemixer_spec.md", "data.md"} <= names
    for name in names:
        folder = REPO / "docs" if name == "data.md" else REPO / "docs" / "specs"
        assert (folder / name).is_file(), name
    for link in re.findall(r"\]\(([^)#:]+)\)", readme):  # relative links resolve
        assert (REPO / link).exists(), link


def test_upstream_fixtures_are_in_the_repository(upstream_dir):
    assert upstream_dir.is_relative_to(REPO)
    for name in ("ranker_config.json", "retrieval_config.json", "param_tree.json", "ORIGIN.md"):
        assert (upstream_dir / name).is_file()
