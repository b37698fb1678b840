"""The held-out guard: sync against the sandbox with real git.

The Lab of metric 1562 gets 33 more labelled reviews in eight more test sets (40 in all).
One lesson ("GENERAL") recurs across test sets: a proposal trained on the training sets
learns it and so also fixes the held-out reviews that need it. Each new set also has a
lesson of its own, which only training on that set teaches.
"""

from __future__ import annotations

import pytest

from cekura_gitops import holdout
from cekura_gitops.sandbox import Sandbox
from tests.conftest import Repo

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"refs/heads/cekura-gitops/optimise/{GREETING}"
GENERAL = "A nickname the caller offered counts as a name."
NEW_SETS = tuple(range(601, 609))
SEED_SETS = (456, 789)


def grow_lab(sandbox: Sandbox) -> None:
    """33 labelled reviews in test sets 601..608 (plus the seed's 7: 40)."""
    for n, test_set in enumerate(NEW_SETS):
        sandbox.state.add_review(1562, True, False, GENERAL, test_set, test_set_name=f"Set {test_set}")
        sandbox.state.add_review(1562, True, False, f"Lesson only set {test_set} teaches.", test_set)
        sandbox.state.add_review(1562, True, True, "", test_set)
        sandbox.state.add_review(1562, False, False, "", test_set)
        if n == 0:
            sandbox.state.add_review(1562, False, False, "", test_set)
    sandbox.state.add_review(1562, None, True, "", NEW_SETS[0])  # unlabelled: never counted


def use_holdout(repo: Repo, block: str = "optimiser:\n  holdout: 0.3\n") -> None:
    path = repo.work / GREETING_FILE
    path.write_text(path.read_text() + block)
    repo.commit_all("hold out 30 % of the Lab")
    repo.push()


def sync(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return cli("--json", "sync", "--no-pr", "--metric", GREETING, *args, cwd=repo.work, env=env)


def bodies(sandbox: Sandbox, method: str, suffix: str) -> list[dict]:  # type: ignore[type-arg]
    return [r.body for r in sandbox.requests if r.method == method and r.path.endswith(suffix)]


EXPECTED = holdout.split(1562, (*SEED_SETS, *NEW_SETS), 0.3)


def held_out_reviews(sandbox: Sandbox) -> list[dict]:  # type: ignore[type-arg]
    reviews = sandbox.state.metric(1562)["reviews"]
    return [
        r for r in reviews if r["test_set"]["id"] in EXPECTED.held_out and r["expected_value"] is not None
    ]


def test_the_split_is_stable_and_new_test_sets_do_not_move_old_ones() -> None:
    ids = list(range(1000, 1050))
    first = holdout.split(7, ids, 0.3)
    assert first == holdout.split(7, reversed(ids), 0.3)
    assert 5 <= len(first.held_out) <= 25  # about 30 % of 50
    grown = holdout.split(7, [*ids, *range(2000, 2010)], 0.3)
    assert set(first.held_out) <= set(grown.held_out)
    assert set(first.training) <= set(grown.training)
    assert holdout.split(8, ids, 0.3) != first  # per metric
    # Never an empty side, however few test sets.
    for n in range(2, 6):
        few = holdout.split(3, range(n), 0.3)
        assert few.training and few.held_out


def test_optimiser_sees_only_training_sets_and_the_guard_uses_held_out(
    pulled: Repo, cli, cekura_env, sandbox, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    assert EXPECTED.held_out and EXPECTED.training  # the fixture data splits both ways
    grow_lab(sandbox)
    use_holdout(pulled)
    summary = tmp_path / "summary.md"
    result = sync(cli, pulled, {**cekura_env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert m["status"] == "proposed", m

    [start] = bodies(sandbox, "POST", "/process_feedbacks/")
    assert start == {"metric_id": 1562, "test_set_ids": list(EXPECTED.training)}
    [rescore] = bodies(sandbox, "POST", "/1562/run_reviews/")
    proposed = pulled.origin_file(BRANCH, GREETING_FILE) or ""
    assert rescore["skip_save"] is True
    assert rescore["description"].splitlines()[-1] in proposed
    assert GENERAL in rescore["description"]
    for test_set in EXPECTED.held_out:  # nothing learnt from held-out sets
        assert f"set {test_set} teaches" not in rescore["description"]

    held = held_out_reviews(sandbox)
    old = sum(r["actual_value"] == r["expected_value"] for r in held)
    fixed = sum(r["feedback"] == GENERAL for r in held)
    assert (m["holdout_old_score"], m["holdout_new_score"]) == (
        f"{old}/{len(held)}",
        f"{old + fixed}/{len(held)}",
    )
    assert m["rescored"] == len(sandbox.state.metric(1562)["reviews"])
    assert result.json()["rescored"] == m["rescored"]
    assert f"Re-scored {m['rescored']} review(s) for the held-out guard" in summary.read_text()
    assert sandbox.state.metric(1562)["description"] != rescore["description"]  # nothing saved


def test_a_win_on_training_that_loses_on_held_out_is_not_improved(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    grow_lab(sandbox)
    use_holdout(pulled)
    # The proposal's judge gets every held-out review wrong that the Lab gets right.
    held = held_out_reviews(sandbox)
    sandbox.state.set_rescore_verdicts(
        {r["id"]: not r["expected_value"] for r in held if r["actual_value"] == r["expected_value"]}
    )
    result = sync(cli, pulled, cekura_env)
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert m["status"] == "not-improved"
    assert m["new_score"] != m["old_score"]  # it did win on training
    assert m["holdout_new_score"].split("/")[0] < m["holdout_old_score"].split("/")[0]
    assert "held-out" in m["detail"]
    assert pulled.origin_ref(BRANCH) is None


def test_a_re_score_without_per_review_results_is_an_error_not_a_guess(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    grow_lab(sandbox)
    use_holdout(pulled)
    sandbox.state.run_reviews_results = False  # a reply with only an aggregate score
    result = sync(cli, pulled, cekura_env)
    assert result.code == 1
    [m] = result.json()["metrics"]
    assert m["status"] == "error" and "never guessed" in m["detail"]
    assert "holdout_new_score" not in m
    assert pulled.origin_ref(BRANCH) is None
    # The run is finished, not left to be re-scored (and billed) again by every sync.
    again = sync(cli, pulled, cekura_env)
    assert [x["status"] for x in again.json()["metrics"]] == ["no-new-feedback"]


def test_below_holdout_min_the_ordinary_guard_applies_and_says_why(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    use_holdout(pulled)  # the seed's 7 labelled reviews: below the default 30
    result = sync(cli, pulled, cekura_env)
    [m] = result.json()["metrics"]
    assert m["status"] == "proposed"
    assert "7 labelled review(s)" in m["holdout_note"] and "holdout_min is 30" in m["holdout_note"]
    assert bodies(sandbox, "POST", "/process_feedbacks/") == [{"metric_id": 1562}]
    assert sandbox.count("POST", r"/run_reviews/$") == 0
    assert "holdout_old_score" not in m


@pytest.mark.parametrize("config", ["optimiser: {holdout: 0.3, holdout_min: 7}\n"])
def test_config_file_defaults_turn_the_guard_on(pulled: Repo, cli, cekura_env, sandbox, config: str) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", config)
    pulled.commit_all("guard every metric")
    pulled.push()
    result = sync(cli, pulled, cekura_env)
    [m] = result.json()["metrics"]
    assert "holdout_old_score" in m, m
    [start] = bodies(sandbox, "POST", "/process_feedbacks/")
    assert len(start["test_set_ids"]) == 1  # two test sets: one each side


def test_the_pull_request_shows_training_and_held_out_scores(
    pulled: Repo, cli, github_env, gh, sandbox
) -> None:  # type: ignore[no-untyped-def]
    grow_lab(sandbox)
    use_holdout(pulled)
    result = cli("--json", "sync", "--metric", GREETING, cwd=pulled.work, env=github_env)
    [m] = result.json()["metrics"]
    [pr] = [p for p in gh.pulls if p["state"] == "open"]
    body = pr["body"]
    training = f"| training reviews (the optimiser's score) | {m['old_score']} | {m['new_score']} |"
    held = (
        "| held-out reviews (never shown to the optimiser; the guard) "
        f"| {m['holdout_old_score']} | {m['holdout_new_score']} |"
    )
    assert training in body and held in body
    assert "### Evidence on held-out reviews" in body
    assert f"(held-out {m['holdout_old_score']} → {m['holdout_new_score']})" in pr["title"]
