"""Work that must grow linearly with the number of metric files (counted, never timed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cekura_gitops import metric_files
from tests.conftest import Repo

MANY = 40


def _add_metrics(sandbox: Any, count: int) -> None:
    for i in range(count):
        sandbox.state.add_metric(
            project=1376,
            name=f"Scaling metric {i}",
            eval_type="binary",
            type="llm_judge",
            description=f"Score TRUE if the agent did step {i}.",
        )


def _count_resolves(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = Path.resolve

    def counting(self: Path, strict: bool = False) -> Path:
        calls.append(self)
        return real(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", counting)
    return calls


def test_pull_matches_files_and_uncommitted_paths_once(
    pulled: Repo, cli, cekura_env, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _add_metrics(sandbox, MANY)
    assert cli("pull", "--project", "1376", cwd=pulled.work, env=cekura_env).code == 0
    pulled.commit_all("more metrics")
    drafts = 10
    for i in range(drafts):  # uncommitted new files: pull must leave them alone
        pulled.write(
            f"metrics/draft_{i}.yaml",
            f"slug: draft_{i}\nproject: 1376\nname: Draft\ntype: llm_judge\n"
            "eval_type: binary\ndescription: d\n",
        )
    for metric_id in sandbox.state.metric_ids()[::4]:
        sandbox.state.dashboard_edit(metric_id, name=f"Renamed {metric_id}")
    resolves = _count_resolves(monkeypatch)
    result = cli("--json", "pull", "--project", "1376", cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.err
    statuses = [m["status"] for m in result.json()["metrics"]]  # type: ignore[index]
    assert len(statuses) == MANY + 3 and statuses.count("updated") == len(sandbox.state.metric_ids()[::4])
    # Each uncommitted path and each folder resolves once; matching a metric resolves
    # nothing. Per metric × per uncommitted path (or two per file) would be hundreds.
    assert len(resolves) <= drafts + 10, sorted(map(str, resolves))


def test_each_metric_file_is_parsed_once(pulled: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    for name in ("parse", "compose", "load"):
        real = getattr(yaml, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            parses.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(yaml, name, counting)
    files = metric_files.load_metrics([pulled.work / "metrics"], pulled.work)
    assert len(files) == 3 and len(parses) == 3, parses


@pytest.mark.parametrize(
    "text",
    [
        "id: 1\nslug: a\nagents: [1, 2]\nsimulation_enabled: true\ndescription: |-\n  x\n  y\n",
        "slug: b\noptimiser:\n  test_set_ids: [4, 5]\n  enabled: false\nname: 'q: r'\nprompt: null\n",
        "slug: c\nnotes: {on: 1, off: no, n: ~, f: 1.5, h: 0x1F, d: 2024-01-02, s: !!str 3}\n",
    ],
)
def test_one_pass_reads_what_pyyaml_reads(text: str) -> None:
    from cekura_gitops import yamltext

    if "!!str" in text:
        with pytest.raises(metric_files.MetricValidationError):
            yamltext.parse(text, "m.yaml")  # explicit tags stay refused
        text = text.replace("!!str 3", "'3'")
    assert yamltext.parse(text, "m.yaml").data == yaml.load(text, Loader=yamltext._Loader)


def test_list_checks_only_the_identity_it_prints(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    pulled.write("metrics/odd.yaml", "id: 77\nslug: odd\nproject: 1376\neval_type: sometimes\nname: Odd\n")
    listed = cli("--json", "list", cwd=pulled.work)
    assert listed.code == 0, listed.err
    assert "odd" in listed.json()["slugs"]  # type: ignore[operator]
    assert cli("validate", cwd=pulled.work).code == 1  # validate still checks everything

    pulled.write("metrics/odd.yaml", "id: many\nslug: odd\n")
    refused = cli("list", cwd=pulled.work)
    assert refused.code == 1 and "metrics/odd.yaml:1:5:" in refused.err, refused.err


def _documents() -> list[Any]:
    """Every metric document in the repository and the corpus, valid or not, plus mutants."""
    from cekura_gitops import yamltext

    root = Path(__file__).resolve().parents[1]
    docs: list[Any] = []
    for path in sorted([*root.glob("metrics/*.yaml"), *root.glob("tests/corpus/**/*.yaml")]):
        try:
            docs.append(yamltext.parse(yamltext.decode(path.read_bytes(), path.name), path.name).data)
        except metric_files.MetricValidationError:
            continue
    base = yamltext.parse((root / "metrics/caller_greeted_by_name_1562.yaml").read_text(), "m").data
    odd_values = [None, True, 0, -1, 1.0, 2.5, "", "x", "-bad-", "a" * 300]
    odd_values += [[], [1, 1], [1, True], [0], ["a"], {}]
    for key in [*base, "enum_values", "optimiser", "agents", "unknown_field"]:
        for value in odd_values:
            docs.append({**base, key: value})
            docs.append({**base, "optimiser": {"test_set_ids": value, "min_feedback": value}})
    return docs


def test_the_fast_schema_path_accepts_only_what_the_validator_accepts() -> None:
    from cekura_gitops import schema

    validator = schema._validator("metric")
    accepted = 0
    for data in _documents():
        if schema.fits(schema.schema("metric"), data):
            accepted += 1
            assert not list(validator.iter_errors(data)), data
    assert accepted >= 3  # and it does take the fast path for ordinary files


def test_loading_runs_no_cycle_collection_and_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    """Loading keeps every file it parsed, so each full collection would walk all of them:
    at 10,000 files that was a third of the loading time. The collector pauses while files
    load and is back on afterwards (and stays off if it was off)."""
    import gc

    folder = tmp_path / "metrics"
    folder.mkdir()
    for i in range(200):
        slug = f"metric_{i}"
        (folder / f"{slug}.yaml").write_text(
            f"id: {1000 + i}\nslug: {slug}\nproject: 1\nname: Metric {i}\ntype: llm_judge\n"
            f"eval_type: binary\ndescription: Score TRUE if the agent did step {i}.\n"
        )
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(record)
    try:
        assert len(metric_files.load_metrics([folder], tmp_path)) == 200
    finally:
        gc.callbacks.remove(record)
    assert len(collections) <= 1, collections  # one when the collector comes back, not ~one per 700 objects
    assert gc.isenabled()
    gc.disable()
    try:
        metric_files.load_metrics([folder], tmp_path)
        assert not gc.isenabled()
    finally:
        gc.enable()
