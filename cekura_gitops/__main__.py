from __future__ import annotations

from cekura_gitops.cli import main

raise SystemExit(main())
