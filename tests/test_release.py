"""The release workflow's own steps, run here: the version check, the build record, the notes."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cekura_gitops import __version__, release
from tests.action.harness import load_yaml

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / ".github" / "workflows" / "release.yml"


def _step(name: str) -> dict[str, object]:
    steps = [s for job in load_yaml(RELEASE)["jobs"].values() for s in job["steps"]]
    return next(s for s in steps if s.get("name") == name)


def _run(name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = cwd / "step.sh"
    script.write_text(str(_step(name)["run"]))
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(
        ROOT / "cekura_gitops", work / "cekura_gitops", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "CHANGELOG.md", work)
    return work


def test_the_version_is_written_once_and_the_changelog_has_it() -> None:
    assert importlib.metadata.version("cekura-gitops") == __version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()
    assert f"\n## {__version__}\n" in (ROOT / "CHANGELOG.md").read_text()


def test_the_tag_must_name_the_version(checkout: Path) -> None:
    step = "Check that the tag names the package's version"
    assert _run(step, checkout, {"TAG": f"v{__version__}"}).returncode == 0
    wrong = _run(step, checkout, {"TAG": "v9.9.9"})
    assert wrong.returncode == 1 and "does not name the package version" in wrong.stdout


def test_the_build_records_its_commit_for_init(checkout: Path) -> None:
    sha = "fedcba9876543210fedcba9876543210fedcba98"
    done = _run(
        "Record the commit in the package", checkout, {"REPOSITORY": "acme/cekura-gitops", "COMMIT": sha}
    )
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("recorded", checkout / "cekura_gitops" / "_build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorded = (module.ACTION_REPOSITORY, module.ACTION_COMMIT)
    assert recorded == ("acme/cekura-gitops", sha)
    bad = _run("Record the commit in the package", checkout, {"REPOSITORY": 'x"; import os', "COMMIT": sha})
    assert bad.returncode != 0


def test_the_release_notes_are_this_versions_changelog_section(checkout: Path) -> None:
    script = str(_step("Create the release")["run"])
    awk = next(line.strip() for line in script.splitlines() if line.strip().startswith("awk "))
    notes = subprocess.run(
        ["bash", "-c", awk.replace('>"$RUNNER_TEMP/notes.md"', "")],
        cwd=checkout,
        env={**os.environ, "version": __version__},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cekura-gitops init" in notes
    assert "## 0.1.0" not in notes and "The first version" not in notes


def test_publishing_uses_trusted_publishing_without_a_token() -> None:
    jobs = load_yaml(RELEASE)["jobs"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    publish = next(s for s in jobs["pypi"]["steps"] if "gh-action-pypi-publish" in s.get("uses", ""))
    assert "with" not in publish or "password" not in publish["with"]
    assert "secrets." not in RELEASE.read_text()


def test_schema_ids_are_the_files_at_the_major_release_tag() -> None:
    import json

    for name in ("metric", "config"):
        doc = json.loads((ROOT / "cekura_gitops" / "schemas" / f"{name}.schema.json").read_text())
        assert doc["$id"] == release.schema_id(name)
        assert f"/v{__version__.split('.')[0]}/cekura_gitops/schemas/{name}.schema.json" in doc["$id"]
        assert release.schema_url(name).endswith(f"/v{__version__}/cekura_gitops/schemas/{name}.schema.json")
