"""The README and the CLI say the same thing: every `xfeed …` command and option the README shows
(command table, examples, inline code) exists, and defaults the README states agree with the
CLI's."""

from __future__ import annotations

import re

import pytest
import typer

from tests.conftest import REPO
from xfeed_cli.main import app

ROOT = typer.main.get_command(app)
CTX = ROOT.context_class(ROOT)


def _readme_parts() -> tuple[list[str], list[str]]:
    """(shell lines of fenced blocks, inline code spans) of the README."""
    text = (REPO / "README.md").read_text()
    fenced = re.findall(r"```\w*\n(.*?)```", text, flags=re.S)
    lines = [ln for block in fenced for ln in block.replace("\\\n", " ").splitlines()]
    rest = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
    spans = [s.replace("\n", " ").replace("\\|", "|") for s in re.findall(r"`([^`]+)`", rest)]
    return lines, spans


def _invocations() -> list[str]:
    """Every `xfeed …` command line the README shows (split at && and shell pipes)."""
    lines, spans = _readme_parts()
    out = []
    for chunk in lines + spans:
        for part in re.split(r"&&|\s\\?\|\s(?=(?:\S*/)?xfeed\b)", chunk):
            m = re.search(r"(?:^|[\s/])xfeed\s+(.*)$", part.strip())
            if m and not part.strip().startswith(("pip", "python")):
                out.append("xfeed " + m.group(1).strip())
    return out


def _options(cmd) -> dict[str, object]:
    """Every option of `cmd`, `--help` (which every command has) included."""
    opts = {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
    return {"--help": None, **opts}


def _resolve(tokens: list[str]):
    """(command, remaining tokens, path) for tokens after `xfeed`; alternatives `a|b` must all
    be subcommands."""
    cmd, path, i = ROOT, [], 0
    while i < len(tokens) and hasattr(cmd, "list_commands"):
        tok = tokens[i].strip("[]()")
        if tok.startswith("-"):
            assert tok.split("=")[0] in _options(cmd), f"xfeed {' '.join(path)}: no option {tok}"
            i += 1
            continue
        names = tok.split("|")
        subs = [cmd.get_command(CTX, n) for n in names]
        assert all(subs), f"xfeed {' '.join(path)}: no command {tok}"
        cmd, path = subs[0], [*path, names[0]]
        i += 1
    return cmd, tokens[i:], path


INVOCATIONS = _invocations()


def test_the_readme_shows_commands():
    assert len(INVOCATIONS) > 40
    assert any(x.startswith("xfeed rank --user") for x in INVOCATIONS)


@pytest.mark.parametrize("line", INVOCATIONS)
def test_every_readme_command_and_option_exists(line):
    tokens = line.split()[1:]
    cmd, rest, path = _resolve(tokens)
    assert not hasattr(cmd, "list_commands") or not rest, f"{line}: incomplete command"
    opts = _options(cmd)
    for j, tok in enumerate(rest):
        name = tok.strip("[]()").split("=")[0]
        if re.fullmatch(r"--?[a-z][\w-]*", name):
            assert name in opts, f"{line}: xfeed {' '.join(path)} has no option {name}"
            # a bracketed optional with a number is the documented default: `[--top-k 200]`
            nxt = rest[j + 1] if j + 1 < len(rest) else ""
            if tok.startswith("[") and re.fullmatch(r"[\d,.]+\]", nxt):
                want = float(nxt.rstrip("]").replace(",", ""))
                assert opts[name].default == want, f"{line}: default of {name}"


def test_options_named_alone_exist():
    """Inline `--option …` spans outside a command belong to some command."""
    every = set(_options(ROOT))

    def collect(cmd):
        every.update(_options(cmd))
        if hasattr(cmd, "list_commands"):
            for n in cmd.list_commands(CTX):
                collect(cmd.get_command(CTX, n))

    collect(ROOT)
    _, spans = _readme_parts()
    named = {s.split()[0].split("=")[0] for s in spans if re.match(r"--[a-z]", s)}
    assert named and named <= every, named - every


def test_train_help_states_the_code_defaults():
    from training.trainer import default_train_config

    steps = {m: default_train_config(m).steps for m in ("ranker", "retrieval")}
    train = ROOT.get_command(CTX, "train")
    helptext = next(p.help for p in train.params if p.name == "steps")
    assert f"ranker {steps['ranker']}" in helptext and f"retrieval {steps['retrieval']}" in helptext
    readme = (REPO / "README.md").read_text()
    assert f"{steps['ranker']:,} steps" in readme


def test_rank_ranker_option_runs_both_paths(runner):
    import json

    feeds = {}
    for path in ("cached", "reference"):
        res = runner.invoke(app, ["rank", "--user", "1007", "--ranker", path, "--json"])
        assert res.exit_code == 0, res.output
        lines = [json.loads(x) for x in res.stdout.splitlines()]
        assert lines[0]["query"]["params"]["ranker"] == path
        feeds[path] = {c["post_id"]: c["score"] for c in lines[1:]}
    common = feeds["cached"].keys() & feeds["reference"].keys()
    assert len(common) >= 33
    assert all(abs(feeds["cached"][p] - feeds["reference"][p]) < 1e-4 for p in common)
    bad = runner.invoke(app, ["rank", "--user", "1007", "--ranker", "fast"])
    assert bad.exit_code == 2
