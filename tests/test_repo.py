"""House rules: CI runs the README's command, lint is clean, no pickle, one-way imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.conftest import REPO

LIBRARIES = ("phoenix", "checkpoints", "pipeline", "thunder", "filters")


def _fenced_after(marker: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert m, f"README lacks a fenced command after <!-- {marker} -->"
    return [line for line in m.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_one_main_and_one_test_command():
    assert len(_fenced_after("readme:main-command")) == 1
    (test_cmd,) = _fenced_after("readme:test-command")
    assert "pytest" in test_cmd


def test_ci_runs_the_readme_test_command_verbatim():
    (test_cmd,) = _fenced_after("readme:test-command")
    script = (REPO / ".ci" / "run").read_text()
    extract = re.search(r"cmd=\$\((awk .*)\)\n", script).group(1)
    got = subprocess.run(["bash", "-c", extract], cwd=REPO, capture_output=True, text=True)
    assert got.stdout.strip() == test_cmd
    assert 'bash -c "$cmd"' in script


def _python_files():
    for pkg in (*LIBRARIES, "xfeed_cli", "tests"):
        yield from (REPO / pkg).rglob("*.py")


def test_no_pickle_anywhere():
    for path in _python_files():
        text = path.read_text()
        for needle in ("allow_pickle=" + "True", "import " + "pickle"):
            assert needle not in text, path


def test_library_code_never_imports_the_cli():
    for pkg in LIBRARIES:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                assert not any(n.split(".")[0] == "xfeed_cli" for n in names), path


def test_modules_stay_under_600_lines():
    for pkg in (*LIBRARIES, "xfeed_cli"):
        for path in (REPO / pkg).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 600, path


def test_ruff_lint_is_clean():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_console_script_is_installed():
    res = subprocess.run(
        [sys.executable, "-m", "xfeed_cli.main", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0 and "ckpt" in res.stdout
