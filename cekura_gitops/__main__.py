from __future__ import annotations

from cekura_gitops.entry import main

raise SystemExit(main())
