"""`git: {commit_via: api}`: GitHub creates (and signs) the bot's commits through the Git Data
API; a human's commit still stops the bot, the ref update is a compare-and-swap, and a push
refused by a "require signed commits" ruleset says which setting fixes it."""

from __future__ import annotations

from pathlib import Path

from cekura_gitops.apicommits import ApiCommitter
from cekura_gitops.github import GitHubClient
from cekura_gitops.gitrepo import GitRepo
from tests._hardening import template_origin  # noqa: F401
from tests.conftest import GH_TOKEN, Repo
from tests.fakes.github_app import FakeApp
from tests.github_app_fixtures import app, clock, env, gh, only, sync  # noqa: F401

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"cekura-gitops/optimise/{GREETING}"
API_CONFIG = "git: {commit_via: api}\n"


def configure(repo: Repo, text: str = API_CONFIG) -> None:
    repo.write("cekura-gitops.yaml", text)
    repo.commit_all("config")
    repo.push()


def test_api_commits_are_verified_and_authored_by_the_app(
    pulled: Repo, cli, env, gh, app: FakeApp, sandbox
) -> None:  # type: ignore[no-untyped-def]
    configure(pulled)
    result = sync(cli, pulled, env)
    assert result.code == 0, result.err
    assert only(result)["status"] == "proposed"
    tip = pulled.origin_ref(f"refs/heads/{BRANCH}")
    assert tip is not None
    assert gh.verification(tip)["verified"] is True and gh.verification(tip)["reason"] == "valid"
    author = pulled.origin_git("log", "-1", "--format=%ae %ce", tip)
    assert author == f"{app.bot_email} noreply@github.com"
    assert "Guidance from reviewed calls" in (pulled.origin_file(tip, GREETING_FILE) or "")
    # blobs → tree → commit → ref, with no custom identity in the commit request
    [commit] = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/git/commits")]
    assert not {"author", "committer", "signature"} & set(commit.body)
    assert [
        r.path.rsplit("/", 1)[-1] for r in gh.requests if r.path.split("/git/")[-1] in ("blobs", "trees")
    ] == [
        "blobs",
        "trees",
    ]
    assert gh.count("POST", r"/git/refs$") == 1

    sandbox.state.add_review(1562, True, False, feedback="A nickname the caller offered counts.")
    again = sync(cli, pulled, env)
    assert only(again)["status"] == "updated", again.out
    new_tip = pulled.origin_ref(f"refs/heads/{BRANCH}")
    assert new_tip != tip and gh.verification(new_tip or "")["verified"] is True
    assert gh.count("PATCH", r"/git/refs/heads/") == 1  # a fast-forward-only update
    assert pulled.origin_git("rev-list", "--count", f"main..{BRANCH}") == "2"


def test_a_human_commit_stops_the_bot_in_api_mode(
    pulled: Repo, cli, env, gh, sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    configure(pulled)
    assert only(sync(cli, pulled, env))["status"] == "proposed"
    pulled.human_edit(BRANCH, GREETING_FILE, tmp_path / "human")
    tip = pulled.origin_ref(f"refs/heads/{BRANCH}")
    sandbox.state.add_review(1562, True, False, feedback="New label.")
    result = sync(cli, pulled, env)
    assert only(result)["status"] == "skipped-edited" and "ada@example.com" in only(result)["detail"]
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") == tip
    assert gh.count("PATCH", r"/git/refs/heads/") == 0


def test_the_api_ref_update_is_a_compare_and_swap(pulled: Repo, gh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A commit pushed between our look at the tip and our ref update is never overwritten."""
    repo = GitRepo(pulled.work)
    base = repo.head_sha()
    with GitHubClient(gh.url, GH_TOKEN, "acme/metrics", min_write_interval=0) as client:
        committer = ApiCommitter(client, repo)
        first = committer.commit("bot/x", base, {"a.txt": b"one\n"}, "bot: one", None)
        assert first is not None
        assert committer.commit("bot/x", base, {"a.txt": b"dup\n"}, "bot: again", None) is None  # exists
        pulled.human_edit("bot/x", "b.txt", tmp_path / "human", "human\n")
        theirs = pulled.origin_ref("refs/heads/bot/x")
        repo.fetch("origin", "+refs/heads/bot/x:refs/remotes/origin/bot/x")
        # We still believe the tip is `first`: the update must lose, not overwrite.
        assert committer.commit("bot/x", base, {"a.txt": b"two\n"}, "bot: two", first.sha) is None
        assert pulled.origin_ref("refs/heads/bot/x") == theirs
        # Knowing the real tip, it wins (and keeps the human's commit in history).
        won = committer.commit("bot/x", base, {"a.txt": b"two\n"}, "bot: two", theirs)
        assert won is not None and pulled.origin_ref("refs/heads/bot/x") == won.sha


def test_a_ruleset_refusal_names_the_fix_and_api_mode_passes_it(pulled: Repo, cli, env, gh) -> None:  # type: ignore[no-untyped-def]
    gh.require_signed_commits()
    result = sync(cli, pulled, env)
    m = only(result)
    assert result.code == 1 and m["status"] == "error"
    assert "ruleset" in m["detail"] and "commit_via: api" in m["detail"], m["detail"]
    assert "Commits must have verified signatures" in m["detail"]
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") is None
    # The config change itself is a commit on main: made by a human with a bypass, here by
    # writing to the origin directly (the hook guards pushes only).
    (Path(gh.origin_path) / "hooks" / "pre-receive").rename(Path(gh.origin_path) / "hooks" / "off")
    configure(pulled)
    gh.require_signed_commits()
    fixed = sync(cli, pulled, env, "--force")
    assert fixed.code == 0, fixed.err
    assert only(fixed)["status"] == "proposed"
    assert gh.verification(pulled.origin_ref(f"refs/heads/{BRANCH}") or "")["verified"] is True


def test_api_mode_needs_an_identity_it_can_recognise(pulled: Repo, cli, cekura_env, gh) -> None:  # type: ignore[no-untyped-def]
    configure(pulled)
    env = {
        **cekura_env,
        "GITHUB_TOKEN": GH_TOKEN,  # a token of unknown identity (not the Actions token)
        "GITHUB_REPOSITORY": "acme/metrics",
        "GITHUB_API_URL": gh.url,
    }
    result = sync(cli, pulled, env)
    assert result.code == 1 and "commit_via: api needs a GitHub App" in result.err


def test_two_api_mode_syncs_at_once_start_one_optimisation_per_metric(
    template_origin: Path, tmp_path: Path, make_fake_github
) -> None:  # type: ignore[no-untyped-def]
    """The state ref's compare-and-swap holds with commit_via: api (and the App's tokens)."""
    import json
    import os
    import subprocess
    import sys

    from cekura_gitops.sandbox import Sandbox
    from tests._hardening import (
        IDS,
        SLUGS,
        cekura_env,
        clone,
        end_runs_once_both_decided,
        fresh_repo,
        open_pr_heads,
        state,
    )

    repo = fresh_repo(template_origin, tmp_path / "r")
    configure(repo, (repo.work / "cekura-gitops.yaml").read_text() + "\n" + API_CONFIG)
    app = FakeApp()
    gh = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=GH_TOKEN, app=app)
    with Sandbox(optimiser_seconds=600.0) as sandbox:  # held until both have decided
        env = {
            **os.environ,
            **cekura_env(sandbox),
            "CEKURA_GITOPS_APP_ID": str(app.app_id),
            "CEKURA_GITOPS_APP_PRIVATE_KEY": app.private_key,
            "GITHUB_REPOSITORY": "acme/metrics",
            "GITHUB_API_URL": gh.url,
            "GITHUB_GRAPHQL_URL": gh.graphql_url,
        }
        a, b = clone(repo.origin, tmp_path / "a"), clone(repo.origin, tmp_path / "b")
        errs = [tmp_path / "a.err", tmp_path / "b.err"]
        procs = []
        for clone_, path in zip((a, b), errs, strict=True):
            with path.open("w") as stderr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "cekura_gitops", "--json", "sync"],
                        cwd=clone_.work,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                    )
                )
        end_runs_once_both_decided(sandbox, repo.origin, procs, errs)
        outputs = [
            (proc.communicate(timeout=120)[0], path.read_text())
            for proc, path in zip(procs, errs, strict=True)
        ]
        started = sandbox.state.optimisations_started
    assert started == {i: 1 for i in IDS.values()}, (started, outputs)
    per_metric: dict[str, list[str]] = {slug: [] for slug in SLUGS}
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err
        for m in json.loads(out)["metrics"]:
            per_metric[m["slug"]].append(m["status"])
    for slug, got in per_metric.items():
        assert sorted(got) == ["in-flight", "proposed"], (slug, got)
    assert open_pr_heads(gh) == sorted(f"cekura-gitops/optimise/{s}" for s in SLUGS)
    for head in open_pr_heads(gh):
        tip = repo.origin_ref(f"refs/heads/{head}") or ""
        assert gh.verification(tip)["verified"] is True
    assert state(repo.origin)["runs"] == {}
