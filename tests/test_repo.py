"""House rules: CI runs the README's command, lint is clean, no pickle, one-way imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.conftest import REPO

LIBRARIES = (
    "safeio", "phoenix", "checkpoints", "thunder", "filters",
    "pipeline", "world", "training", "upstream", "benchmarks", "audit",
)  # fmt: skip

# Which packages each package may import (besides itself): CLI -> (pipeline | world | training |
# upstream | benchmarks | audit) -> (phoenix | thunder | filters | checkpoints) -> safeio; nothing
# imports the benchmarks but the CLI; pipeline, training and audit read worlds through world.
LOWER = {"safeio", "phoenix", "thunder", "filters", "checkpoints"}
ALLOWED = {
    "safeio": set(),
    "phoenix": {"safeio"},
    "thunder": {"safeio"},
    "filters": {"safeio"},
    "checkpoints": {"safeio", "phoenix"},
    "world": LOWER,
    "training": LOWER | {"world"},
    "pipeline": LOWER | {"world"},
    "upstream": LOWER,
    "benchmarks": LOWER | {"world", "training", "pipeline", "audit"},
    "audit": {"safeio", "world"},
    "xfeed_cli": set(LIBRARIES),
}


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


def _imports(path):
    """Project modules a file imports (dotted names), at any depth of the file."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports under `if TYPE_CHECKING:` never run
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_graph():
    modules = {}
    for pkg in (*LIBRARIES, "xfeed_cli"):
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            name = (
                ".".join(p for p in rel.parts if p != "__init__")
                if rel.name == "__init__"
                else ".".join(rel.parts)
            )
            modules[name] = path
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_packages_import_only_the_layers_below_them():
    for mod, deps in _module_graph().items():
        pkg = mod.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            assert other == pkg or other in ALLOWED[pkg], f"{mod} imports {dep}"


def test_no_import_circles_between_files():
    graph = _module_graph()
    state = {}

    def visit(m, stack):
        state[m] = "active"
        for d in graph[m]:
            if state.get(d) == "active":
                raise AssertionError("import circle: " + " -> ".join([*stack, m, d]))
            if d not in state:
                visit(d, [*stack, m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])


def test_every_package_says_what_it_holds():
    for pkg in (*LIBRARIES, "xfeed_cli"):
        doc = ast.get_docstring(ast.parse((REPO / pkg / "__init__.py").read_text()))
        assert doc and doc.strip(), f"{pkg}/__init__.py has no docstring"


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


def test_pyproject_packages_every_package():
    import tomllib

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for pkg in (*LIBRARIES, "xfeed_cli"):
        assert f"{pkg}*" in include["find"]["include"], pkg
