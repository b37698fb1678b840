"""Per-call evidence and label integrity: sync against the sandbox, the fake GitHub and real git."""

from __future__ import annotations

import re

import pytest

from cekura_gitops import evidence, evidence_body, prbody
from cekura_gitops.evidence import Evidence, Flip, LabReview, ReviewEvidence, ReviewResult
from cekura_gitops.sandbox import OptimiserOutcome
from tests.conftest import Repo

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"cekura-gitops/optimise/{GREETING}"
# The seeded Lab of metric 1562 (sandbox/seed.py): review id -> (expected, the Lab's verdict).
LAB = {
    9001: (True, True),
    9002: (False, False),
    9003: (True, True),
    9004: (False, True),
    9005: (True, True),
    9006: (False, True),
    9007: (False, False),
}
TEST_SETS = {9001: 456, 9002: 456, 9003: 456, 9004: 456, 9005: 789, 9006: 789, 9007: 789}


def results(verdicts: dict[int, object], explanation: str = "Judged by the proposal.") -> tuple[dict, ...]:  # type: ignore[type-arg]
    return tuple(
        {
            "review_id": rid,
            "test_set_id": TEST_SETS[rid],
            "actual_value": verdicts.get(rid, LAB[rid][1]),
            "explanation": f"{explanation} ({rid})",
            "success": True,
            "error": None,
        }
        for rid in sorted(LAB)
    )


# Fixes 9004 and 9006 (wrong before, right after); breaks 9001 (right before, wrong after).
TWO_FIXED_ONE_BROKEN = results({9004: False, 9006: False, 9001: False})


@pytest.fixture
def env(github_env) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return github_env  # type: ignore[no-any-return]


def sync(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return cli("--json", "sync", *args, cwd=repo.work, env=env)


def the_pr(gh) -> dict:  # type: ignore[no-untyped-def,type-arg]
    [pr] = [p for p in gh.pulls if p["head"]["ref"] == BRANCH and p["state"] == "open"]
    return pr  # type: ignore[no-any-return]


def table_rows(body: str) -> dict[int, list[str]]:
    """Evidence table rows by review id: the cells after the id."""
    rows = {}
    for line in body.splitlines():
        match = re.match(r"^\| (\d+) \| (fixed|broken|still_wrong|still_right) \|", line)
        if match:
            rows[int(match[1])] = [c.strip() for c in line.strip("|").split(" | ")][1:]
    return rows


def test_pr_shows_counts_and_every_fixed_and_broken_review(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(review_results=TWO_FIXED_ONE_BROKEN))
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert m["status"] == "proposed"
    assert m["evidence"] == {"fixed": 2, "broken": 1, "still_wrong": 0, "still_right": 4}
    assert m["label_changes"] == 0

    pr = the_pr(gh)
    body = pr["body"]
    section = body.split(prbody.BEGIN, 1)[1].lstrip("\n")
    # A proposal that breaks a review says so in its first line, though its score went up.
    assert "breaks 1 labelled review" in section.splitlines()[0]
    assert "breaks 1" in pr["title"]
    assert "**2** fixed · **1** broken · **0** still wrong · **4** still right" in body
    rows = table_rows(body)
    assert sorted(rows) == [9001, 9004, 9006]  # only the flipped ones, by review id
    assert rows[9001][:5] == ["broken", "Greeting regressions (id 456)", "`true`", "`true`", "`false`"]
    assert rows[9004][:5] == ["fixed", "Greeting regressions (id 456)", "`false`", "`true`", "`false`"]
    assert rows[9006][:2] == ["fixed", "Weekend calls (id 789)"]
    assert rows[9006][5] == "Judged by the proposal. (9006)"
    # Broken first: the rows a reviewer must see are at the top.
    order = [int(x) for x in re.findall(r"^\| (\d+) \| (?:fixed|broken) \|", body, re.M)]
    assert order == [9001, 9004, 9006]
    # The metric's link once above the table, not per row.
    evidence_part = body.split("### Evidence", 1)[1].split("### ", 1)[0]
    assert evidence_part.count("/metrics/1562)") == 1
    assert "<details>" not in evidence_part  # three rows: nothing folded
    assert prbody.read_machine(body)["evidence"] == m["evidence"]


def test_a_clean_proposal_has_no_warning(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    result = sync(cli, pulled, env, "--metric", GREETING)
    [m] = result.json()["metrics"]
    # The sandbox's own optimiser fixes the two reviews whose feedback it learns.
    assert m["evidence"] == {"fixed": 2, "broken": 0, "still_wrong": 0, "still_right": 5}
    pr = the_pr(gh)
    first = pr["body"].split(prbody.BEGIN, 1)[1].lstrip("\n").splitlines()[0]
    assert first.startswith("## Cekura optimiser proposal")
    assert "breaks" not in pr["title"] and not any(
        evidence_body.LABEL in x["labels"] for x in gh.labels_added
    )


LABEL_CHANGE = {
    "review_id": 9004,
    "old_expected_value": False,
    "new_expected_value": True,
    "reason": "Relabelled to match the judge; no reviewer approved it.",
}
FEEDBACK_EDIT = {"review_id": 9006, "feedback": "Reading the name back counts as a greeting."}


@pytest.mark.parametrize("merge", ["auto", "direct"])
def test_label_changes_warn_label_and_never_auto_merge(
    pulled: Repo, cli, env, gh, sandbox, merge: str
) -> None:  # type: ignore[no-untyped-def]
    config = "pull_requests: {merge: direct}\n" if merge == "direct" else ""
    pulled.write("cekura-gitops.yaml", config + "optimiser: {auto_apply: true}\n")
    pulled.commit_all("auto-apply everything")
    pulled.push()
    sandbox.state.set_optimiser_outcome(
        1562,
        OptimiserOutcome(unauthorized_label_changes=(LABEL_CHANGE,), feedback_edits=(FEEDBACK_EDIT,)),
    )
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert (m["status"], m["label_changes"]) == ("proposed", 2)
    pr = the_pr(gh)  # still open: never merged directly either
    assert gh.auto_merge_enabled == []
    assert {"issue_number": pr["number"], "labels": [evidence_body.LABEL]} in gh.labels_added
    section = pr["body"].split(prbody.BEGIN, 1)[1].lstrip("\n")
    assert "changed 2 labels without a person's approval" in section.splitlines()[0]
    changes = section.split("### Label changes nobody approved", 1)[1]
    assert re.search(
        r"^\| 9004 \| unauthorized change \| label \| `false` \| `true` \| Relabelled", changes, re.M
    )
    assert re.search(r"^\| 9006 \| feedback edit \| feedback \| — \| `Reading the name back", changes, re.M)
    assert "not auto-applied: the optimiser changed labels" in result.err


def test_without_per_review_results_there_is_no_evidence(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(review_results=({"review_id": "x"},)))
    [m] = sync(cli, pulled, env, "--metric", GREETING).json()["metrics"]
    assert m["status"] == "proposed" and "evidence" not in m
    assert "### Evidence" not in the_pr(gh)["body"]


def test_unresolved_samples_are_folded_with_verdict_and_explanation(
    pulled: Repo, cli, env, gh, sandbox
) -> None:  # type: ignore[no-untyped-def]
    sample = {"review_id": 9002, "verdict": "noise", "pass_rate": 0.4, "explanation": "Judges disagree."}
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(unresolved_samples=(sample,)))
    assert sync(cli, pulled, env, "--metric", GREETING).code == 0
    body = the_pr(gh)["body"]
    folded = body.split("<details><summary>Unresolved samples (1)</summary>", 1)[1].split("</details>")[0]
    assert "| 9002 | noise | 0.4 | Judges disagree. |" in folded


# -- unit: classification, folding, the size budget -------------------------------------------


def review(rid: int, expected: object, actual: object) -> LabReview:
    return LabReview(rid, 1, "set", expected, actual, "")


def result(rid: int, actual: object, success: bool = True) -> ReviewResult:
    return ReviewResult(rid, 1, actual, "why", success, "")


def test_classify_compares_labels_leniently_and_skips_the_unlabelled() -> None:
    reviews = [
        review(1, True, "TRUE"),  # right before
        review(2, "FALSE", True),  # wrong before
        review(3, None, True),  # not labelled: not counted
        review(4, 3, 2),
        review(5, True, True),  # no result from the proposal: not counted
        review(6, True, True),
    ]
    found = evidence.classify(
        reviews,
        [result(1, "false"), result(2, False), result(3, False), result(4, "3.0"), result(6, True, False)],
    )
    assert {r.review.id: r.flip for r in found.rows} == {1: Flip.BROKEN, 2: Flip.FIXED, 4: Flip.FIXED}
    assert found.to_json() == {"fixed": 2, "broken": 1, "still_wrong": 0, "still_right": 0}


def test_label_changes_and_samples_without_a_schema_are_read_leniently() -> None:
    [a, b, c] = evidence.parse_label_changes(
        [{"id": "12", "from": "yes", "to": "no"}, {"weird": 1}, "plain text"], "unauthorized"
    )
    assert (a.review_id, a.field, a.before, a.after, a.note) == (12, "expected_value", "yes", "no", "")
    assert (b.review_id, b.note) == (None, '{"weird": 1}')
    assert c.note == "plain text"
    [s] = evidence.parse_unresolved([{"review_id": 3, "category": "noise", "reason": "flaky"}])
    assert (s.review_id, s.verdict, s.explanation) == (3, "noise", "flaky")


def many(n_fixed: int, n_broken: int, explanation: str = "x") -> Evidence:
    rows = [ReviewEvidence(review(i, True, False), True, explanation, Flip.FIXED) for i in range(n_fixed)] + [
        ReviewEvidence(review(10_000 + i, True, True), False, explanation, Flip.BROKEN)
        for i in range(n_broken)
    ]
    return Evidence(tuple(rows))


def test_rows_past_twenty_are_folded_and_broken_ones_stay_visible() -> None:
    text = evidence_body.evidence_section(many(25, 3), "[lab](https://x/metrics/1)")
    visible, folded = text.split("<details>", 1)
    assert len(re.findall(r"^\| \d+ \| (fixed|broken)", visible, re.M)) == 20
    assert len(re.findall(r"^\| \d+ \| (fixed|broken)", folded, re.M)) == 8
    assert len(re.findall(r"^\| 1000\d \| broken", visible, re.M)) == 3
    assert folded.rstrip().endswith("</details>")


def test_a_huge_lab_stays_within_githubs_body_limit() -> None:
    proof = many(5000, 5000, explanation="e" * 500)
    section = prbody.proposal_section(
        slug="s",
        name="n",
        metric_id=1,
        dashboard_url="https://dashboard.cekura.ai",
        old_score="1/2",
        new_score="2/2",
        summary="s" * 20_000,
        unresolved=evidence.parse_unresolved(
            [{"review_id": i, "explanation": "u" * 400} for i in range(900)]
        ),
        fields=[prbody.FieldDiff("description", "a\n" * 20_000, "b\n" * 20_000)],
        machine={"metric_id": 1},
        evidence=proof,
        label_changes=evidence.parse_label_changes(
            [{"review_id": i, "reason": "r" * 300} for i in range(900)], "x"
        ),
    )
    body = prbody.merge_body(None, section)
    assert len(body) <= prbody.MAX_BODY
    assert "more not listed (GitHub's body size limit)" in body
    assert section.splitlines()[0].startswith("⚠️ **This proposal breaks 5000 labelled reviews**")


def test_label_changes_turn_off_auto_merge_left_on_by_an_earlier_proposal(
    pulled: Repo, cli, env, gh, sandbox
) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", "optimiser: {auto_apply: true}\n")
    pulled.commit_all("auto-apply everything")
    pulled.push()
    assert sync(cli, pulled, env, "--metric", GREETING).code == 0  # a clean proposal
    pr = the_pr(gh)
    assert gh.auto_merge_enabled == [pr["node_id"]] and pr["auto_merge"] is not None

    sandbox.state.add_review(1562, True, False, "A nickname the caller offered counts as a name.", 456)
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(unauthorized_label_changes=(LABEL_CHANGE,)))
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert [m["status"] for m in result.json()["metrics"]] == ["updated"]
    pr = the_pr(gh)  # the same PR, updated in place
    assert gh.auto_merge_disabled == [pr["node_id"]] and pr["auto_merge"] is None
    assert gh.auto_merge_enabled == [pr["node_id"]]  # not turned on again
    assert evidence_body.LABEL in [label["name"] for label in pr["labels"]]
