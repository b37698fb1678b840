"""Facts about this build of the package.

`.github/workflows/release.yml` rewrites this file before it builds a release, so an
installed release knows the repository and commit it was built from (what `init` writes as
the Action's reference). A development checkout keeps None, and `init` asks for --action.
"""

from __future__ import annotations

ACTION_REPOSITORY: str | None = None
ACTION_COMMIT: str | None = None
