"""One benchmark invocation's settings, temporary folders and shared fixtures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import GitCounter, Population, Repo, new_repo, seed
from snapshot import unpack

from cekura_gitops.cekura import LiveMetric
from cekura_gitops.commands.pull import file_fields
from cekura_gitops.metric_files import render_new
from cekura_gitops.sandbox import Sandbox


@dataclass
class Config:
    smoke: bool
    pairs: int  # A B pairs per comparison
    big_pairs: int  # pairs for the 100-metric sync (its serial routine takes minutes)
    latency: float
    tmp: Path
    baseline_ref: str | None = None
    templates: dict[Population, Repo] = field(default_factory=dict)
    _dirs: int = 0
    _git_counter: GitCounter | None = None
    _old_code: Path | None = None

    def pick(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def seconds(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full

    def fresh(self, name: str) -> Path:
        self._dirs += 1
        return self.tmp / f"{self._dirs:03d}-{name}"

    @property
    def git_counter(self) -> GitCounter:
        if self._git_counter is None:
            self._git_counter = GitCounter(self.tmp)
        return self._git_counter

    def template(self, pop: Population) -> Repo:
        """A repo whose metrics/ was pulled from a sandbox seeded with `pop`, pushed to main."""
        if pop not in self.templates:
            repo = new_repo(self.fresh(f"template-{pop.count}"))
            # What `pull` writes (its own renderer), without a child process per project.
            source = Sandbox(seed=False, validate_responses=False)  # never started: its state only
            seed(source, pop)
            folder = repo.work / "metrics"
            folder.mkdir()
            for metric_id in pop.ids():
                fields = file_fields(LiveMetric.parse(source.state.metric(metric_id)))
                (folder / f"{fields['slug']}.yaml").write_text(render_new(fields))
            repo.commit_push(f"import {pop.count} metrics")
            self.templates[pop] = repo
        return self.templates[pop]

    def old_code(self) -> Path | None:
        """The package as of `baseline_ref` ("today's" code), extracted once; None if absent."""
        if self.baseline_ref is None:
            return None
        if self._old_code is None:
            dest = self.fresh("baseline-code")
            dest.mkdir()
            if unpack(self.baseline_ref, dest) is not None:
                self.baseline_ref = None
                return None
            self._old_code = dest
        return self._old_code
