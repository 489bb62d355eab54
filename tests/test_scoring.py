"""Scorer formulas, the selector's total order, params files, and the runner's policy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import scorers
from pipeline.candidates import PostCandidate
from pipeline.columns import Cands
from pipeline.framework import CandidatePipeline, PipelineError, StageDefaults
from pipeline.params import HEADS, FeedParams, ParamsError, load_params
from pipeline.scorers import (
    diversity_multiplier,
    offset_score,
    weighted_parts,
)
from pipeline.selector import TopKScoreSelector
from tests.test_filters import cand, query


class _Run:
    """A scorer or selector over one request's candidate objects."""

    def __init__(self, component):
        self.c = component

    def score(self, q, cands):
        cols = Cands.from_candidates(cands)
        return cols.with_columns(self.c.score([q], cols)).to_candidates()

    def select(self, q, cands):
        sel, rest = self.c.select([q], Cands.from_candidates(cands))
        return [cands[i] for i in sel], [cands[i] for i in rest]

    def enable(self, q):
        return self.c.enable(q)


def WeightedScorer():  # noqa: N802 - stands in for the class in these tests
    return _Run(scorers.WeightedScorer())


def AuthorDiversityScorer():  # noqa: N802
    return _Run(scorers.AuthorDiversityScorer())


def OONScorer():  # noqa: N802
    return _Run(scorers.OONScorer())


def NewAuthorBoostScorer():  # noqa: N802
    return _Run(scorers.NewAuthorBoostScorer())


def test_default_weight_sums_match_production():
    p = FeedParams()
    assert p.positive_sum == pytest.approx(43.32)
    assert p.negative_sum == pytest.approx(367.22)


def test_worked_example_from_the_spec():
    # P(fav)=0.1, P(reply)=0.01, dwell_time=10 s, P(report)=0.0001, all else 0.
    c = cand(
        1,
        probs={"favorite": 0.1, "reply": 0.01, "report": 0.0001},
        dwell_time_s=10.0,
        in_network=False,
    )
    (w,) = WeightedScorer().score(query(), [c])
    assert w.weighted_score == pytest.approx(0.1176)
    second = dataclasses.replace(c, post_id=2)
    scored = AuthorDiversityScorer().score(query(), WeightedScorer().score(query(), [c, second]))
    assert scored[1].score == pytest.approx(0.0735, abs=1e-4)  # the author's 2nd post: ×0.625
    final = OONScorer().score(query(), scored)
    assert final[1].score == pytest.approx(0.0551, abs=1e-4)  # and out of network: ×0.75


def test_negative_combined_scores_map_below_every_non_negative_one():
    bad = cand(1, probs={"report": 0.01})  # combined −2.34
    good = cand(2, probs={"favorite": 0.0})  # combined 0
    b, g = WeightedScorer().score(query(), [bad, good])
    p = FeedParams()
    assert b.weighted_score == pytest.approx((-2.34 + p.negative_sum) / 410.54 * 0.001)
    assert 0 <= b.weighted_score < g.weighted_score == pytest.approx(0.001)


def test_mutual_follow_reply_boost_and_vqv_gating():
    base = {"reply": 0.1, "vqv": 0.5}
    plain = cand(1, probs=base)
    mutual = cand(2, probs=base, is_mutual_follow_author=True)
    video = cand(3, probs=base, video_duration_ms=15_000)
    short = cand(4, probs=base, video_duration_ms=8_000)
    s = {
        c.post_id: c.weighted_score
        for c in WeightedScorer().score(query(), [plain, mutual, video, short])
    }
    assert s[2] - s[1] == pytest.approx(0.1 * 15)
    assert s[3] - s[1] == pytest.approx(0.5 * 0.05)
    assert s[4] == pytest.approx(s[1])
    big = query(follower_count=50_000)
    assert WeightedScorer().score(big, [video])[0].weighted_score == pytest.approx(s[1])


@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(sorted(HEADS)), st.floats(0, 1), max_size=8),
            st.none() | st.floats(0, 60),
            st.none() | st.booleans(),
            st.none() | st.integers(0, 30_000),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
    st.none() | st.integers(0, 100_000),
)
def test_vectorised_weighted_scores_equal_the_per_candidate_formula(rows, followers):
    q = query(follower_count=followers)
    cands = [
        cand(i + 1, probs=probs, dwell_time_s=dwell, in_network=inn, video_duration_ms=video,
             is_mutual_follow_author=mutual, in_reply_to_post_id=0)
        for i, (probs, dwell, inn, video, mutual) in enumerate(rows)
    ]  # fmt: skip
    for c, got in zip(cands, WeightedScorer().score(q, cands), strict=True):
        parts = weighted_parts(c, q)
        combined = sum(v for v in parts.values() if v >= 0) - sum(
            -v for v in parts.values() if v < 0
        )
        assert got.weighted_score == pytest.approx(offset_score(combined, q.params), abs=1e-12)


def test_diversity_multiplier_sequence():
    got = [diversity_multiplier(k, 0.5, 0.25) for k in range(5)]
    assert got == pytest.approx([1.0, 0.625, 0.4375, 0.34375, 0.296875])


def test_oon_discount_rules():
    cands = [cand(1, in_network=False), cand(2, in_network=True),
             cand(3, in_network=True, in_reply_to_post_id=9), cand(4)]  # fmt: skip
    cands = [dataclasses.replace(c, score=1.0) for c in cands]
    assert [c.score for c in OONScorer().score(query(), cands)] == [0.75, 1.0, 0.75, 1.0]


def test_new_author_boost_lifts_one_eligible_post_to_the_16th_score():
    q = query(params=dataclasses.replace(FeedParams(), new_author_boost=True))
    cands = [cand(i, 100 + i, score=1.0 - i / 100, author_follower_count=5000, view_count=5)
             for i in range(1, 21)]  # fmt: skip
    cands[16] = dataclasses.replace(cands[16], author_follower_count=10)  # eligible, 17th
    out = NewAuthorBoostScorer().score(q, cands)
    assert [c.post_id for c in out if c.cold_start_boosted] == [17]
    assert out[16].score == pytest.approx(cands[15].score)
    assert not NewAuthorBoostScorer().enable(query())


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())


@given(st.lists(st.tuples(st.integers(1, 10**6), finite_or_not), min_size=0, max_size=60,
                unique_by=lambda t: t[0]))  # fmt: skip
def test_selector_sinks_non_finite_scores_and_breaks_ties_by_post_id(items):
    cands = [PostCandidate(post_id=p, author_id=1, score=s) for p, s in items]
    q = query(params=dataclasses.replace(FeedParams(), top_k=10))
    selected, non_selected = _Run(TopKScoreSelector()).select(q, cands)
    ranked = selected + non_selected
    assert sorted(c.post_id for c in ranked) == sorted(p for p, _ in items)
    finite = [c for c in ranked if c.score is not None and math.isfinite(c.score)]
    assert ranked[: len(finite)] == finite  # every finite score before any non-finite one
    for a, b in zip(finite, finite[1:], strict=False):
        assert a.score > b.score or (a.score == b.score and a.post_id > b.post_id)
    assert len(selected) == min(10, len(cands))


def test_weights_file_overrides_and_rejects_bad_input(tmp_path):
    good = tmp_path / "w.toml"
    good.write_text("top_k = 20\noon_weight_factor = 0.5\n[weights]\nfavorite = 2.0\n")
    p = load_params(good)
    assert (p.top_k, p.oon_weight_factor, p.weights["favorite"]) == (20, 0.5, 2.0)
    assert p.weights["reply"] == 5.0
    for text, needle in [("bogus = 1", "unknown parameter"), ("[weights]\nfoo = 1", "unknown head"),
                         ("[weights]\nfavorite = nan", "finite"), ("top_k = 1.5", "integer"),
                         ("[weights\n", "not valid TOML")]:  # fmt: skip
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ParamsError, match=needle):
            load_params(bad)


# ---- the runner ------------------------------------------------------------------------------


@dataclasses.dataclass
class ListSource(StageDefaults):
    ids: list
    tag: str

    @property
    def name(self):
        return f"ListSource:{self.tag}"

    def get_candidates(self, queries, reqs):
        return Cands.concat([Cands.from_candidates([cand(i, source=self.tag) for i in self.ids],
                                                   req=r) for r in reqs.tolist()])  # fmt: skip


class Boom(StageDefaults):
    def get_candidates(self, queries, reqs):
        raise RuntimeError("source down")

    def score(self, queries, cands):
        raise RuntimeError("scorer down")


class DropOne(StageDefaults):
    def score(self, queries, cands):
        return {"score": cands.get("score")[1:]}


class Doubler(StageDefaults):
    def score(self, queries, cands):
        s = cands.get("score")
        return {"score": np.where(cands.null("score"), 1.0, s) * 2}


def _run(pipe):
    return pipe.execute([query()]).request(0)


def test_runner_concatenates_sources_in_declaration_order_and_runs_scorers_in_sequence():
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a"), ListSource([3], "b")],
                             scorers=[Doubler(), Doubler()])  # fmt: skip
    res = _run(pipe)
    assert [c.post_id for c in res.retrieved] == [1, 2, 3]
    assert [c.score for c in res.scored] == [4.0, 4.0, 4.0]
    assert "source:ListSource:a" in res.timings_ms and "total" in res.timings_ms


def test_runner_keeps_each_request_apart_in_a_batch():
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a")], scorers=[Doubler()])
    res = pipe.execute([query(), dataclasses.replace(query(), user_id=2)])
    assert res.retrieved.req.tolist() == [0, 0, 1, 1]
    assert [c.post_id for c in res.request(1).scored] == [1, 2]
    assert res.counts[1]["source:ListSource:a"] == 2


def test_fail_fast_by_default_and_fail_open_when_lenient():
    pipe = CandidatePipeline(sources=[ListSource([1], "a"), Boom()])
    with pytest.raises(PipelineError, match="stage=source component=Boom failed: source down"):
        _run(pipe)
    pipe.lenient = True
    res = _run(pipe)
    assert [c.post_id for c in res.retrieved] == [1] and "source down" in res.errors[0]


def test_scorer_length_mismatch_is_an_error_for_that_scorer():
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a")], scorers=[DropOne(), Doubler()])
    with pytest.raises(PipelineError, match="length_mismatch"):
        _run(pipe)
    pipe.lenient = True
    res = _run(pipe)
    assert [c.score for c in res.scored] == [2.0, 2.0]  # the bad scorer's output was not applied


class FavColumns(StageDefaults):
    fields = ("fav_count",)

    def hydrate(self, queries, cands):
        return {"fav_count": cands.get("post_id") * 10}


class ViewColumns(StageDefaults):
    """Hydrates a nullable field from a list (None = null)."""

    fields = ("view_count",)

    def hydrate(self, queries, cands):
        return {"view_count": [7 if x == 1 else None for x in cands.get("post_id").tolist()]}


class Overreach(StageDefaults):
    fields = ("fav_count",)

    def hydrate(self, queries, cands):
        return {"fav_count": np.ones(len(cands), np.int64), "score": np.full(len(cands), 9.0)}


def test_hydrators_merge_only_owned_fields():
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a")],
                             hydrators=[FavColumns(), ViewColumns()])  # fmt: skip
    res = _run(pipe)
    assert [(c.fav_count, c.view_count) for c in res.retrieved] == [(10, 7), (20, None)]
    assert [c.source for c in res.retrieved] == ["a", "a"]  # untouched fields survive


def test_column_hydrator_with_foreign_fields_or_wrong_length_fails():
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a")], hydrators=[Overreach()])
    with pytest.raises(PipelineError, match="does not own: score"):
        _run(pipe)
    short = FavColumns()
    short.hydrate = lambda queries, cands: {"fav_count": np.ones(1, np.int64)}
    pipe = CandidatePipeline(sources=[ListSource([1, 2], "a")], hydrators=[short], lenient=True)
    res = _run(pipe)
    assert [c.fav_count for c in res.retrieved] == [None, None]
    assert any("length_mismatch" in e for e in res.errors)


def test_columns_round_trip_candidate_objects():
    cs = [cand(1, in_network=False, ancestors=(3, 4), probs={"favorite": 0.5}, score=1.5),
          cand(2, text="x", labels=("spam",), view_count=0)]  # fmt: skip
    assert Cands.from_candidates(cs).to_candidates() == cs


def test_evolve_copies_and_checks_field_names():
    c = cand(1, score=1.0)
    d = c.evolve(score=2.0)
    assert (c.score, d.score) == (1.0, 2.0) and d == dataclasses.replace(c, score=2.0)
    with pytest.raises(TypeError, match="no field"):
        c.evolve(bogus=1)
