"""The default branch's history: no flip-flops (`oscillation`), and the score history chart."""

from __future__ import annotations

import re

import pytest

from cekura_gitops import dashboard, githistory
from cekura_gitops.gitrepo import GitRepo, LogEntry
from cekura_gitops.sandbox import OptimiserOutcome
from tests.conftest import Repo

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"cekura-gitops/optimise/{GREETING}"


def set_description(repo: Repo, old: str, new: str, message: str) -> str:
    path = repo.work / GREETING_FILE
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    sha = repo.commit_all(message)
    repo.push()
    return sha


def test_a_proposal_restoring_a_replaced_version_is_an_oscillation(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    live = sandbox.state.metric(1562)["description"]
    restored = live.replace("first 3 turns", "first 5 turns")
    # Someone tried the looser window in git, then put the strict one back.
    tried = set_description(pulled, "first 3 turns", "first 5 turns", "Try a looser greeting window")
    set_description(pulled, "first 5 turns", "first 3 turns", "Back to 3 turns: legal wants it strict")
    assert sandbox.state.metric(1562)["description"] == live  # live equals the file: no drift

    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(description=restored, old=(5, 7), new=(7, 7)))
    result = cli("--json", "sync", "--no-pr", "--metric", GREETING, cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert m["status"] == "oscillation"
    assert m["restores"] == tried
    assert tried[:12] in m["detail"] and "Try a looser greeting window" in m["detail"]
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") is None

    # A proposal that no version ever had is proposed as usual.
    fresh = live.replace("first 3 turns", "first 2 turns")
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(description=fresh, old=(5, 7), new=(7, 7)))
    again = cli("--json", "sync", "--no-pr", "--force", "--metric", GREETING, cwd=pulled.work, env=cekura_env)
    assert [x["status"] for x in again.json()["metrics"]] == ["proposed"]


def test_score_history_chart_after_two_merged_proposals(pulled: Repo, cli, github_env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    def propose_merge_apply() -> None:
        result = cli("--json", "sync", "--metric", GREETING, cwd=pulled.work, env=github_env)
        assert [x["status"] for x in result.json()["metrics"]] == ["proposed"], result.err
        [pr] = [p for p in gh.pulls if p["state"] == "open"]
        gh.close_pull(pr["number"], merged=True)  # squash, as on github.com
        pulled.git("pull", "-q", "origin", "main")
        applied = cli("--json", "apply", cwd=pulled.work, env=github_env)
        assert applied.code == 0, applied.err

    propose_merge_apply()  # 5/7 → 7/7
    sandbox.state.add_review(1562, True, False, "A nickname the caller offered counts as a name.", 456)
    propose_merge_apply()  # 7/8 → 8/8

    [issue] = [i for i in gh.issues if i["title"] == dashboard.TITLE]
    body = issue["body"]
    assert "### Score history of merged proposals" in body
    [chart] = re.findall(r"```mermaid\n(.*?)```", body, re.S)
    assert chart.startswith("xychart-beta\n")
    assert f'title "{GREETING}"' in chart
    assert re.search(r"x-axis \[\"before\", \"\d{4}-\d\d-\d\d\", \"\d{4}-\d\d-\d\d \(2\)\"\]", chart)
    assert "line [71.4, 100, 100]" in chart  # 5/7 before, then 7/7 and 8/8
    table = body.split(f"#### `{GREETING}`", 1)[1]
    assert re.search(r"^\| \d{4}-\d\d-\d\d \d\d:\d\d \| `[0-9a-f]{10}` \| 5/7 → 7/7 \| +\|$", table, re.M)
    assert re.search(r"^\| \d{4}-\d\d-\d\d \d\d:\d\d \| `[0-9a-f]{10}` \| 7/8 → 8/8 \| +\|$", table, re.M)
    # Rebuilt from git alone: the same points from a fresh clone's history.
    history = githistory.score_history(GitRepo(pulled.work), "HEAD", "metrics")
    assert [(p.old, p.new) for p in history[GREETING]] == [("5/7", "7/7"), ("7/8", "8/8")]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (  # sync's own commit (merge commit or rebase merge)
            "optimise(m_1): 1/2 → 2/2\n\nbody\n\nCekura-Metric: m_1\nCekura-Score: 1/2 -> 2/2\n"
            "Cekura-Holdout-Score: 3/9 -> 4/9\nCekura-GitOps-Proposal: abc\n",
            ("m_1", "1/2", "2/2", "3/9", "4/9"),
        ),
        (  # a squash commit listing the branch's commit messages
            "Optimise m_1 (#7)\n\n* optimise(m_1): 1/2 → 2/2\n\n"
            "Cekura-Metric: m_1\nCekura-Score: 1/2 -> 2/2\n",
            ("m_1", "1/2", "2/2", None, None),
        ),
        (  # a commit written before the score trailers existed
            "optimise(m_2): 5/7 → 7/7\n\nCekura-Progress-Id: p\nCekura-GitOps-Proposal: abc\n",
            ("m_2", "5/7", "7/7", None, None),
        ),
        (  # a squash commit whose message is the PR body (its machine block)
            'Optimise m_3 (#9)\n\n<!-- cekura-gitops {"kind":"optimise","slug":"m_3",'
            '"old_score":"2/4","new_score":"3/4"} -->\n',
            ("m_3", "2/4", "3/4", None, None),
        ),
        ("Merge pull request #5 from acme/x\n\noptimise(m_1): 1/2 → 2/2\n", None),
        (  # a hand-written look-alike with values of the wrong shape is ignored
            '<!-- cekura-gitops {"kind":"optimise","slug":"m_3","old_score":"<img src=x>",'
            '"new_score":"3/4"} -->\n',
            None,
        ),
        (
            '<!-- cekura-gitops {"kind":"optimise","slug":"a\\"b","old_score":"1/2","new_score":"2/2"} -->',
            None,
        ),
        ("Tighten the greeting window\n", None),
    ],
)
def test_merged_proposals_are_read_from_any_merge_style(message: str, expected: tuple | None) -> None:  # type: ignore[type-arg]
    point = githistory.parse_point(LogEntry("f" * 40, 0, message))
    got = (point.slug, point.old, point.new, point.holdout_old, point.holdout_new) if point else None
    assert got == expected


def test_earlier_versions_are_read_ahead_and_answer_as_earlier_version_does(pulled: Repo) -> None:
    # sync reads a file's history while its run is in flight: by the time the run ends,
    # the answer needs no git process, and it is the answer earlier_version gives.
    tried = set_description(pulled, "first 3 turns", "first 5 turns", "Try a looser greeting window")
    set_description(pulled, "first 5 turns", "first 3 turns", "Back to 3 turns")
    repo = GitRepo(pulled.work)
    head = pulled.git("rev-parse", "HEAD")
    from cekura_gitops import metric_files

    then = metric_files.parse_blob(repo.show_file(tried, GREETING_FILE), GREETING_FILE, file_stem=GREETING)
    assert then is not None
    proposed = {"description": then.metric.fields["description"]}  # the looser window again
    expected = githistory.earlier_version(repo, head, GREETING_FILE, proposed, GREETING)
    assert expected is not None and expected.sha == tried

    ahead = githistory.EarlierVersions(repo, head)
    ahead.want(GREETING, GREETING_FILE)
    ahead.read_ahead(GREETING)
    ahead._reads[GREETING].result(timeout=60)  # read in the background
    started: list[tuple[str, ...]] = []
    real = repo.git
    repo.git = lambda *a, **k: started.append(a) or real(*a, **k)  # type: ignore[method-assign]
    assert ahead.find(GREETING, proposed) == expected
    assert ahead.find(GREETING, {"description": "a text no version had"}) is None
    assert started == []  # answered from what was read ahead
    ahead.close()


def test_a_history_read_that_failed_in_the_background_fails_the_metric_that_asks(pulled: Repo) -> None:
    from cekura_gitops.errors import GitError

    ahead = githistory.EarlierVersions(GitRepo(pulled.work), "f" * 40)  # no such commit
    ahead.want(GREETING, GREETING_FILE)
    ahead.read_ahead(GREETING)
    with pytest.raises(GitError):
        ahead.find(GREETING, {"description": "x"})
    ahead.close()
