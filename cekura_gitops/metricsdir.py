"""The metrics folder a command works on: its files, and where it sits in the repository."""

from __future__ import annotations

from cekura_gitops import metric_files
from cekura_gitops.errors import ConfigError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.settings import Settings


def metrics_folder(settings: Settings, repo: GitRepo) -> str:
    """The metrics folder relative to the repository root; outside it is a usage error."""
    try:
        return str(settings.metrics_dir.resolve().relative_to(repo.root.resolve()))
    except ValueError:
        raise ConfigError(
            f"--metrics-dir {settings.metrics_dir} is outside the git repository {repo.root}"
        ) from None


def load_files(settings: Settings, *, identity_only: bool = False) -> list[MetricFile]:
    """Every metric file under --metrics-dir; a missing folder says how to get one."""
    if not settings.metrics_dir.is_dir():
        raise ConfigError(
            f"no metrics folder at {settings.metrics_dir}: run `cekura-gitops pull --project ID` "
            "to import your metrics, or pass --metrics-dir"
        )
    return metric_files.load_metrics([settings.metrics_dir], settings.root, identity_only=identity_only)
