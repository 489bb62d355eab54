"""`xfeed audit`: the table, --json, --plot DIR (PNGs) and --html FILE (plots inlined), written
atomically and never over a file xfeed did not write."""

from __future__ import annotations

import json

from xfeed_cli.main import app


def test_audit_cli_json_plots_and_html(planted_worlds, runner, tmp_path):
    w = planted_worlds
    runs = [str(w["planted-chrono"]), str(w["control-chrono"])]
    argv = ["audit", *runs, "--baseline", runs[1], "--bootstrap", "50", "--json",
            "--plot", str(tmp_path / "plots"), "--html", str(tmp_path / "audit.html")]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["format"] == "xfeed-audit/1" and result["baseline"].startswith("chrono")
    assert result["bootstrap"]["replicates"] == 50 and result["group_by"] == "topic"
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["amplification.png", "lorenz.png", "oon_share.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    page = (tmp_path / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "music" in page
    again = runner.invoke(app, argv)  # previous outputs of the same kind are replaced
    assert again.exit_code == 0 and json.loads(again.stdout) == result
    table = runner.invoke(app, ["audit", *runs, "--bootstrap", "20", "--segment-by", "activity"])
    assert table.exit_code == 0, table.output
    assert "amplification ratio per author group" in table.stdout and "music" in table.stdout


def test_audit_never_overwrites_a_foreign_file(planted_worlds, runner, tmp_path, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    mine = tmp_path / "notes.html"
    mine.write_text("my notes")
    run = str(planted_worlds["control-chrono"])
    res = runner.invoke(app, ["audit", run, "--bootstrap", "5", "--html", str(mine)])
    assert res.exit_code == 2 and mine.read_text() == "my notes"
    assert [x for x in res.stderr.splitlines() if x.startswith("error:")]


def test_population_whatif_ranks_both_arms_and_audits_b_against_a(runner, tmp_path):
    w = tmp_path / "oon.toml"
    w.write_text("oon_weight_factor = 3.0\n")  # out-of-network posts weigh 4× more than default
    argv = ["whatif", "--users", "1007,5007,9007", "--weights", str(w), "--out",
            str(tmp_path / "runs"), "--bootstrap", "50", "--json", "--device", "cpu"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["baseline"] == "for-you:a-defaults"
    arms = result["segments"][0]["arms"]
    a, b = arms["for-you:a-defaults"], arms["for-you:b-oon.toml"]
    assert b["oon_share"]["value"] > a["oon_share"]["value"]
    comp = result["segments"][0]["comparisons"]["for-you:b-oon.toml"]
    assert comp["paired_users"] == 3 and comp["posts_gained"]["value"] > 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a-defaults", "b-oon.toml"]


def test_the_shards_of_a_run_are_audited_as_one_run(runner, tmp_path):
    from audit.runs import read_runs

    users = "1007,2007,3007,4007,5007,6007,7007"
    base = ["rank", "--users", users, "--device", "cpu"]
    for name, extra in [("whole", []), ("s0", ["--shard", "0/2"]), ("s1", ["--shard", "1/2"])]:
        res = runner.invoke(app, [*base, *extra, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    whole, merged = read_runs([tmp_path / "whole"]), read_runs([tmp_path / "s1", tmp_path / "s0"])
    assert len(merged) == 1 and merged[0].n_users == whole[0].n_users == 7
    for f in ("viewer", "position", "post", "author", "in_network", "created", "probs"):
        assert (getattr(merged[0], f) == getattr(whole[0], f)).all(), f
    assert [merged[0].sources[c] for c in merged[0].source] == \
        [whole[0].sources[c] for c in whole[0].source]  # fmt: skip
    res = runner.invoke(app, ["audit", str(tmp_path / "s0"), str(tmp_path / "s1"),
                              str(tmp_path / "whole"), "--baseline", str(tmp_path / "s1"),
                              "--bootstrap", "5", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert [r["users"] for r in result["runs"]] == [7, 7] and "+" in result["runs"][0]["path"]
    res = runner.invoke(app, ["audit", str(tmp_path / "s0"), str(tmp_path / "s0")])
    assert res.exit_code == 2
