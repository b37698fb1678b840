"""Scores are numbers; `scores.text` alone renders them (JSON, PR bodies, trailers)."""

from __future__ import annotations

import pytest

from cekura_gitops import githistory, holdout, scores
from cekura_gitops.scores import Score


@pytest.mark.parametrize(
    ("score", "text"),
    [
        (Score.of(5, 7), "5/7"),
        (Score(None, None, 0.8125), "0.812"),
        (Score(3, None, None), "?"),
        (Score(3, None, 0.5), "0.500"),
        (None, "?"),
    ],
)
def test_one_rendering_of_a_score(score: Score | None, text: str) -> None:
    assert scores.text(score) == text
    if score is not None:
        assert str(score) == text


def test_a_score_is_read_from_cekuras_json_and_from_its_own_text() -> None:
    assert Score.parse({"num_correct": 4, "num_total": 6, "score": 0.667}) == Score(4, 6, 0.667)
    assert Score.parse({"num_correct": True}) is None
    assert Score.parse("4/6") is None
    assert scores.parse_text("4/6") == Score.of(4, 6)
    assert scores.parse_text(scores.text(Score.of(0, 9))) == Score.of(0, 9)
    assert [scores.parse_text(t) for t in ("?", "0.5", "4/6 ", None)] == [None] * 4
    assert githistory.ScorePoint.fraction("0/0") is None
    assert githistory.ScorePoint.fraction("1/4") == 0.25


def test_held_out_scores_are_numbers_and_render_alike_everywhere() -> None:
    held = holdout.HeldOutScore(old_correct=2, new_correct=3, total=4, rescored=9)
    assert (held.old, held.new) == (Score.of(2, 4), Score.of(3, 4))
    assert (held.old.value, held.new.value) == (0.5, 0.75)
    assert scores.pair(held.old, held.new) == "2/4 → 3/4"
    trailers = githistory.trailers("m", Score.of(1, 2), None, (held.old, held.new))
    assert trailers == "Cekura-Metric: m\nCekura-Score: 1/2 -> ?\nCekura-Holdout-Score: 2/4 -> 3/4\n"
