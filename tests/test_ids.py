"""ids in JSON are decimal strings (X API convention), so tools that read numbers as doubles
(jq 1.6, JavaScript) keep them; inputs accept strings or numbers."""

from __future__ import annotations

import json

import pytest

from pipeline.candidates import ID_FIELDS, CandidateStreamError, PostCandidate, parse_stream
from pipeline.query import HISTORY_ID_FIELDS, QUERY_ID_FIELDS
from xfeed_cli.main import app

USER = 1007


@pytest.fixture(scope="module")
def stream():
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["retrieve", "--user", str(USER)])
    assert res.exit_code == 0, res.output
    return res.stdout


def _as_doubles(text: str) -> str:
    """What a doubles-only JSON tool writes back (jq 1.6: `jq -c .`): every integer goes
    through a double (2079158470837289141 -> 2079158470837289216)."""
    return "\n".join(
        json.dumps(json.loads(line, parse_int=lambda s: int(float(s))), separators=(",", ":"))
        for line in text.splitlines()
    )


def test_every_id_in_the_stream_is_a_string(stream):
    lines = [json.loads(x) for x in stream.splitlines()]
    q = lines[0]["query"]
    for k in QUERY_ID_FIELDS:
        v = q[k]
        assert all(isinstance(x, str) for x in (v if isinstance(v, list) else [v])), k
    for k in HISTORY_ID_FIELDS:
        assert q["history"][k] and all(isinstance(x, str) for x in q["history"][k])
    assert q["seen_ids"] and q["followed_ids"]
    big = 0
    for c in lines[1:]:
        for k in ID_FIELDS & c.keys():
            v = c[k]
            assert all(isinstance(x, str) for x in (v if isinstance(v, list) else [v])), (k, v)
        big += int(c["post_id"]) > 2**53
    assert big > 100  # snowflake ids: a double would round them


def test_a_doubles_round_trip_changes_nothing(stream, runner):
    """jq-style re-encoding keeps every id; the next stage gives the same output."""
    direct = runner.invoke(app, ["filter"], input=stream).stdout
    via_doubles = runner.invoke(app, ["filter"], input=_as_doubles(stream)).stdout
    assert via_doubles == direct


def test_numeric_ids_are_accepted_as_input(stream, runner):
    """Inputs take ids as numbers too (older streams, hand-written files)."""
    lines = stream.splitlines()
    q, cands = parse_stream(lines)
    numeric = []
    for line in lines:
        d = json.loads(line)
        body = d.get("query", d)
        for k in (QUERY_ID_FIELDS if "query" in d else ID_FIELDS) & body.keys():
            v = body[k]
            body[k] = [int(x) for x in v] if isinstance(v, list) else int(v)
        if "query" in d:
            for k in HISTORY_ID_FIELDS:
                body["history"][k] = [int(x) for x in body["history"][k]]
        numeric.append(json.dumps(d))
    q2, cands2 = parse_stream(numeric)
    assert cands2 == cands
    direct = runner.invoke(app, ["filter"], input=stream).stdout
    assert runner.invoke(app, ["filter"], input="\n".join(numeric)).stdout == direct


@pytest.mark.parametrize("bad", ["12a", "", "1.5", True, 2**64, "99999999999999999999", [1]])
def test_bad_ids_are_rejected(bad):
    with pytest.raises(CandidateStreamError, match="post_id"):
        PostCandidate.from_json({"post_id": bad, "author_id": "1"})


def test_explain_whatif_and_phoenix_json_ids_are_strings(runner, tmp_path):
    out = runner.invoke(app, ["explain", "--user", str(USER), "--top", "1", "--json"]).stdout
    e = json.loads(out)
    assert isinstance(e["post_id"], str) and isinstance(e["candidate"]["author_id"], str)
    w = tmp_path / "w.toml"
    w.write_text("oon_weight_factor = 0.01\n")
    out = runner.invoke(app, ["whatif", "--user", str(USER), "--weights", str(w), "--json"])
    d = json.loads(out.stdout)
    ids = [m["post_id"] for m in d["moved"]] + d["entered"] + d["left"]
    assert ids and all(isinstance(x, str) for x in ids)
