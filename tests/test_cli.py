"""The CLI surface: help, global options, exit codes, the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = ["validate", "pull", "plan", "sync", "apply", "list", "doctor", "demo"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(cli, command: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(command, "--help", cwd=tmp_path)
    assert result.code == 0
    assert f"cekura-gitops {command}" in result.out
    assert "Example" in result.out


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\nfrom cekura_gitops.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('httpx', 'git', 'jsonschema', 'yaml', 'openapi_core') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_version_imports_nothing_it_does_not_need() -> None:
    # `--version` answers from the console script's module alone: no click, no CLI.
    code = (
        "import sys\nfrom cekura_gitops.entry import main\ncode = main(['--version'])\n"
        "loaded = [m for m in ('click', 'cekura_gitops.cli', 'traceback') if m in sys.modules]\n"
        "print('LOADED=' + ','.join(loaded), code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from cekura_gitops import __version__

    assert out.stdout.splitlines() == [f"cekura-gitops, version {__version__}", "LOADED= 0"]
    via_click = subprocess.run(
        [sys.executable, "-m", "cekura_gitops", "--version", "--json"], capture_output=True, text=True
    )
    assert via_click.returncode == 0 and via_click.stdout == out.stdout.splitlines()[0] + "\n"


def test_httpx_command_line_client_is_never_imported() -> None:
    # httpx imports its own CLI (rich, pygments) whenever they are installed; the console
    # script keeps it out. Checked with httpx imported after a command, as any command does.
    code = (
        "import sys\nfrom cekura_gitops.entry import main\nmain(['--help'])\n"
        "import httpx\nprint('MAIN', sys.modules.get('httpx._main', 'absent'), 'rich' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "MAIN None False"


def test_global_options_before_and_after_the_command(cli) -> None:  # type: ignore[no-untyped-def]
    before = cli("--json", "--metrics-dir", "metrics", "list", cwd=ROOT)
    after = cli("list", "--json", "--metrics-dir", "metrics", cwd=ROOT)
    assert before.code == after.code == 0
    assert before.json() == after.json()
    assert [m["slug"] for m in before.json()["metrics"]] == [  # type: ignore[index]
        "caller_greeted_by_name_1562",
        "customer_satisfaction_1563",
        "refund_policy_code_1564",
    ]


def test_usage_error_exits_64(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("sync", "--shard", "5/4", cwd=tmp_path)
    assert result.code == 64


def test_shards_partition_the_metrics(cli) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    for k in (1, 2, 3):
        result = cli("--json", "list", "--shard", f"{k}/3", cwd=ROOT)
        seen += result.json()["slugs"]  # type: ignore[operator]
    assert sorted(seen) == [
        "caller_greeted_by_name_1562",
        "customer_satisfaction_1563",
        "refund_policy_code_1564",
    ]


def test_missing_metrics_folder_says_what_to_do(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("list", cwd=tmp_path)
    assert result.code == 1
    assert "cekura-gitops pull --project ID" in result.err


def test_internal_errors_exit_3_without_traceback(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import cekura_gitops.commands.listing as listing

    def boom(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(listing, "list_metrics", boom)
    result = cli("list", cwd=tmp_path)
    assert result.code == 3
    assert "internal error (RuntimeError)" in result.err and "Traceback" not in result.err
    verbose = cli("-v", "list", cwd=tmp_path)
    assert "Traceback" in verbose.err


def test_repo_metrics_validate(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("validate", cwd=ROOT).code == 0


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEKURA_", "GITHUB_"))}
    done = subprocess.run(
        [sys.executable, "-m", "cekura_gitops", "demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for n in range(1, 8):
        assert f"Step {n}/7" in out
    assert "proposed 5/8 → 7/8" in out
    # The rendered pull request carries the evidence table and the label change.
    assert "**2** fixed · **0** broken" in out
    assert re.search(r"^│ \| 9004 \| fixed \| Greeting regressions \(id 456\) \|", out, re.M)
    assert "changed 1 label without a person's approval" in out
    assert re.search(r"^│ \| 9006 \| feedback edit \| feedback \|", out, re.M)
    assert "**1** still wrong" in out and "<details><summary>Unresolved samples (1)</summary>" in out
    assert re.search(r"^│ \| \d+ \| ambiguous label \| 0.0 \| No feedback says why", out, re.M)
    assert "caller_greeted_by_name_1562: applied (description)" in out
    assert "caller_greeted_by_name_1562: conflict" in out
    assert "Demo finished" in out
    assert not list(cwd.iterdir())  # nothing left behind in the working directory


def test_concurrency_has_one_ceiling_on_the_command_line_in_the_environment_and_the_config(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import json as json_

    from cekura_gitops.limits import MAX_CONCURRENCY

    schema = json_.loads((ROOT / "cekura_gitops" / "schemas" / "config.schema.json").read_text())
    assert schema["properties"]["concurrency"]["maximum"] == MAX_CONCURRENCY
    (tmp_path / "metrics").mkdir()
    assert cli("--concurrency", str(MAX_CONCURRENCY), "list", cwd=tmp_path).code == 0
    too_many = str(MAX_CONCURRENCY + 1)
    assert cli("--concurrency", too_many, "list", cwd=tmp_path).code == 64
    from_env = cli("list", cwd=tmp_path, env={"CEKURA_GITOPS_CONCURRENCY": too_many})
    assert from_env.code == 1 and f"between 1 and {MAX_CONCURRENCY}" in from_env.err
