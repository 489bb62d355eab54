"""Start-up and command-line conventions: light imports, the compile cache, --version, an example
in every command's help, repeated options, quiet `| head`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from xfeed_cli.main import app

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("jax", "haiku", "pyarrow", "optax")


def _python(code: str, env: dict | None = None, stdin: str | None = None):
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=120)  # fmt: skip


def _loaded_after(argv: list[str], stdin: str | None = None) -> list[str]:
    """Heavy modules imported by running the CLI with argv in a fresh process."""
    code = (
        "import sys\nfrom xfeed_cli.main import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)"
    )
    res = _python(code, stdin=stdin)
    line = [x for x in res.stderr.splitlines() if x.startswith("LOADED")]
    assert line, res.stderr
    return eval(line[-1][len("LOADED ") :])  # a list literal printed above


def test_importing_the_cli_imports_no_jax():
    res = _python(f"import sys, xfeed_cli.main; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_console_script_handles_signals_before_importing_the_cli():
    """`xfeed` starts in xfeed_cli.entry, which installs the SIGTERM/SIGINT handlers having
    imported nothing but safeio.signals (a signal during the CLI's imports exits 130)."""
    toml = (REPO / "pyproject.toml").read_text()
    assert 'xfeed = "xfeed_cli.entry:run"' in toml
    cli = ("typer", "click", "rich", "xfeed_cli.main")
    code = (
        f"import sys, xfeed_cli.entry; print(sorted(m for m in sys.modules if m.startswith({cli})))"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("redelivery_s", [None, 60.0])  # as shipped; a re-delivery too late
def test_sigterm_during_the_cli_imports_exits_130(redelivery_s):
    # the deferred signal is raised right after the imports, not left to a timer that a short
    # command (here --help) could outrun on a loaded machine and exit 0
    code = (
        "import os, signal, sys, builtins\n"
        "import xfeed_cli.entry as e\n"
        + (f"import safeio.signals as s; s.RETRY_S = {redelivery_s}\n" if redelivery_s else "")
        + "real, sent = builtins.__import__, []\n"
        "def imp(name, *a, **k):\n"
        "    if name == 'typer' and not sent:  # one SIGTERM, in the middle of the imports\n"
        "        sent.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = imp\n"
        "sys.argv = ['xfeed', '--help']\n"
        "e.run()\n"
    )
    res = _python(code)
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "interrupted" in res.stderr


@pytest.mark.parametrize("module", ["csv", "importlib.metadata"])
def test_sigterm_during_a_short_command_exits_130_and_says_so(module):
    # `--version` (an eager option: it runs while Typer parses the arguments) imports
    # importlib.metadata, which imports csv. A signal inside that import (csv) waits for a
    # re-delivery (set to 60 s here) that the command outruns: it must not exit 0. One at the
    # import statement (importlib.metadata) is raised at once, inside Typer's parsing, which
    # turns it into exit 130 without a word: the error line must still come
    code = (
        "import os, signal, sys, builtins\n"
        "import xfeed_cli.entry as e, xfeed_cli.main\n"
        "import safeio.signals as s; s.RETRY_S = 60.0\n"
        "real, sent = builtins.__import__, []\n"
        "def imp(name, *a, **k):\n"
        f"    if name == {module!r} and not sent:\n"
        "        sent.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = imp\n"
        "sys.argv = ['xfeed', '--version']\n"
        "e.run()\n"
    )
    res = _python(code)
    assert res.returncode == 130, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "interrupted" in res.stderr


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["rank", "--help"], ["bench", "--help"], ["rank", "--usr", "1"],
     ["rank", "--user", "1", "--user", "7"], ["ckpt", "convert", "--help"]],
)  # fmt: skip
def test_help_and_usage_errors_load_no_heavy_modules(argv):
    assert _loaded_after(argv) == []


def test_filter_and_select_processes_load_no_models(runner, tmp_path):
    stream = runner.invoke(app, ["retrieve", "--user", "1007", "--device", "cpu"]).stdout
    src = tmp_path / "cands.jsonl"
    src.write_text(stream)
    for stage in ("filter", "select"):
        loaded = _loaded_after([stage, "--in", str(src), "--out", str(tmp_path / f"{stage}.jsonl")])
        assert "jax" not in loaded and "haiku" not in loaded
        assert (tmp_path / f"{stage}.jsonl").read_text().startswith('{"query"')


def test_compile_cache_is_written_then_reused(tmp_path):
    code = (
        "from phoenix.compile_cache import enable_compile_cache\n"
        "import sys; print(enable_compile_cache())\n"
        "import jax, jax.numpy as jnp\n"
        "print(float(jax.jit(lambda x: (x * 2).sum())(jnp.ones(7))))"
    )
    env = {"XFEED_CACHE_DIR": str(tmp_path), "XFEED_COMPILE_CACHE": "1"}
    first = _python(code, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [str(tmp_path / "jax"), "14.0"]
    entries = sorted(p.name for p in (tmp_path / "jax").iterdir())
    assert entries
    assert _python(code, env).returncode == 0
    assert sorted(p.name for p in (tmp_path / "jax").iterdir()) == entries  # hits, no new entries
    off = _python(code, {**env, "XFEED_COMPILE_CACHE": "0"})
    assert off.stdout.splitlines()[0] == "None"


def test_version(runner):
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.startswith("xfeed ")


def _leaf_commands(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _leaf_commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_every_command_help_has_an_example(runner):
    leaves = list(_leaf_commands(typer.main.get_command(app)))
    assert len(leaves) > 20
    missing = [name for name, cmd in leaves if "Example: xfeed " not in (cmd.help or "")]
    assert missing == []
    res = runner.invoke(app, ["world", "users", "--help"])
    assert res.exit_code == 0 and "Example: xfeed world users" in res.stdout


@pytest.mark.parametrize(
    ("argv", "option"),
    [(["rank", "--user", "1", "--user", "7"], "--user"),
     (["thunder", "query", "--snapshot", "a", "--snapshot=b", "--user", "1"], "--snapshot"),
     (["world", "users", "--limit", "1", "--limit", "2"], "--limit")],
)  # fmt: skip
def test_a_repeated_single_value_option_is_a_usage_error(argv, option, runner):
    res = runner.invoke(app, argv)
    assert res.exit_code == 2
    assert f"option {option} given more than once" in res.output


def test_list_options_may_repeat(runner, tmp_path):
    w = tmp_path / "w.toml"
    w.write_text("oon_weight_factor = 0.5\n")
    res = runner.invoke(app, ["whatif", "--user", "1007", "--weights", str(w), "--weights",
                              str(w), "--json", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["moved"] == []


def test_output_into_a_closed_pipe_ends_quietly():
    code = "from xfeed_cli.main import run; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "world", "users", "--limit", "0", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert json.loads(first)["user_id"]
    assert stderr == ""


def test_param_shapes_are_remembered_and_keyed_by_config(tmp_path, monkeypatch):
    from phoenix import params
    from tests.conftest import tiny_config

    monkeypatch.setenv("XFEED_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("XFEED_COMPILE_CACHE", "1")
    cfg, other = tiny_config("ranker"), tiny_config("ranker", history_seq_len=9)
    traced = params._traced_shapes(cfg)
    assert params.param_shapes.__wrapped__(cfg) == traced
    assert len(list((tmp_path / "param-shapes").iterdir())) == 1
    monkeypatch.setattr(params, "_traced_shapes", lambda c: pytest.fail("traced again"))
    assert params.param_shapes.__wrapped__(cfg) == traced  # read back, not traced
    monkeypatch.undo()
    monkeypatch.setenv("XFEED_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("XFEED_COMPILE_CACHE", "1")
    assert params.param_shapes.__wrapped__(other) == params._traced_shapes(other)
    assert len(list((tmp_path / "param-shapes").iterdir())) == 2


def test_a_start_builds_only_the_command_it_names():
    from xfeed_cli.main import app_for

    lean = typer.main.get_command(app_for(["-v", "rank", "--help"]))
    assert set(lean.commands) == {"rank"}
    assert set(typer.main.get_command(app_for(["world", "info"])).commands) == {"world"}
    for argv in (["--help"], [], ["ranq", "--user", "1"], ["--", "rank"]):
        assert app_for(argv) is app  # root help, suggestions for a typo: every command


def test_every_command_prints_plain_click_help():
    def walk(cmd):
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from walk(sub)

    for cmd in walk(typer.main.get_command(app)):
        assert cmd.rich_markup_mode is None, cmd.name  # rich help costs ~0.2 s per --help
