"""What this installation is: its version, the Action reference it was built for, schema URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cekura_gitops import __version__, _build

# Where the project lives; its schemas are served from here at each release tag.
PROJECT_REPOSITORY = "cekura-gitops/cekura-gitops"
_RAW = "https://raw.githubusercontent.com"
FULL_SHA = re.compile(r"[0-9a-f]{40}")
ACTION_REFERENCE = re.compile(
    r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_./-]+)?)@(?P<ref>[A-Za-z0-9_./-]+)"
)


def major_tag(version: str = __version__) -> str:
    return "v" + version.split(".", 1)[0]


def schema_id(name: str) -> str:
    """The schema's stable `$id`: the file at the floating major tag (v1), stable within a major."""
    return f"{_RAW}/{PROJECT_REPOSITORY}/{major_tag()}/cekura_gitops/schemas/{name}.schema.json"


def schema_url(name: str) -> str:
    """The schema exactly as this release validates it: the file at this release's tag."""
    return f"{_RAW}/{PROJECT_REPOSITORY}/v{__version__}/cekura_gitops/schemas/{name}.schema.json"


@dataclass(frozen=True)
class ActionRef:
    """A `uses:` value for the cekura-gitops Action, and the comment that names its version."""

    repository: str
    ref: str
    comment: str = ""

    @property
    def uses(self) -> str:
        return f"{self.repository}@{self.ref}" + (f" # {self.comment}" if self.comment else "")

    @property
    def pinned(self) -> bool:
        return bool(FULL_SHA.fullmatch(self.ref))


def parse_action(text: str) -> ActionRef | None:
    """`OWNER/cekura-gitops@REF` as given on the command line, or None when malformed."""
    match = ACTION_REFERENCE.fullmatch(text.strip())
    return ActionRef(match["repo"], match["ref"]) if match else None


def installed_action() -> ActionRef | None:
    """The commit this release was built from, or None for a development install."""
    repository, commit = _build.ACTION_REPOSITORY, _build.ACTION_COMMIT
    if not repository or not commit or not FULL_SHA.fullmatch(commit):
        return None
    return ActionRef(repository, commit, f"v{__version__}")
