"""`python -m cekura_gitops.sandbox`: run the Cekura sandbox in the foreground.

For trying cekura-gitops by hand without a Cekura account:

    python -m cekura_gitops.sandbox --port 8765
    CEKURA_API_URL=http://127.0.0.1:8765 CEKURA_API_KEY=sandbox-key cekura-gitops pull
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence

from cekura_gitops.sandbox.server import Sandbox


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cekura_gitops.sandbox",
        description="Run a local, stateful emulation of the Cekura API (seeded demo data).",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    parser.add_argument("--api-key", default="sandbox-key", help="key clients must send")
    parser.add_argument("--optimiser-seconds", type=float, default=3.0, help="how long an optimisation runs")
    parser.add_argument(
        "--optimiser-cap",
        type=int,
        default=None,
        metavar="N",
        help="at most N optimisations run at once; later ones queue (default: no cap)",
    )
    parser.add_argument(
        "--progress-shape",
        choices=("envelope", "flat"),
        default="envelope",
        help="which documented optimiser progress shape to answer with",
    )
    args = parser.parse_args(argv)
    sandbox = Sandbox(
        api_key=args.api_key,
        port=args.port,
        optimiser_seconds=args.optimiser_seconds,
        progress_shape=args.progress_shape,
        optimiser_cap=args.optimiser_cap,
    )
    with sandbox:
        print(f"Cekura sandbox listening on {sandbox.url}", flush=True)
        print(f"  export CEKURA_API_URL={sandbox.url}", flush=True)
        print(f"  export CEKURA_API_KEY={sandbox.api_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
