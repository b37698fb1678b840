"""Live metrics read ahead: sync's GETs go out while its git work (fetch, state) runs.

Every metric a sync takes up starts with a GET of its live version, and none of those
depends on git: the fetch of the default branch and the state ref, the branch listing and
the state read can go on meanwhile. So can building the Cekura client, whose TLS context
(the CA bundle) takes tens of milliseconds. Against GitHub (a few hundred milliseconds per
remote operation) and Cekura (a round trip per GET, the first one alone until the key is
known to work) the two overlap instead of adding up.

A read is only a GET: one the sync turns out not to need (its file is not on the default
branch yet, say) costs Cekura a request and changes nothing. Errors are kept with the read
and raised where the sync asks for it, exactly as a GET made there would raise them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.replies import LiveMetric

__all__ = ["LiveReads"]


class LiveReads:
    """The client `make_client` builds, and GETs of `metric_ids` through it, at most
    `workers` at once: all started on construction, in the background."""

    def __init__(
        self, make_client: Callable[[], CekuraClient], metric_ids: Iterable[int], workers: int
    ) -> None:
        wanted = list(dict.fromkeys(metric_ids))
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(wanted))), thread_name_prefix="live"
        )
        self._client = self._pool.submit(make_client)
        self._reads: dict[int, Future[LiveMetric]] = {i: self._pool.submit(self._read, i) for i in wanted}

    @property
    def client(self) -> CekuraClient:
        """The client, once built; what building it raised (a missing key, say) otherwise."""
        return self._client.result()

    def get(self, metric_id: int) -> LiveMetric:
        """The metric as Cekura has it; the read's own CekuraAPIError if it failed."""
        read = self._reads.get(metric_id)
        return read.result() if read is not None else self.client.get_metric(metric_id)

    def close(self) -> None:
        """Drop the reads not yet sent (a stopped or failed run), wait for those in flight,
        then close the client."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not self._client.cancelled() and self._client.exception() is None:
            self._client.result().close()

    def _read(self, metric_id: int) -> LiveMetric:
        return self.client.get_metric(metric_id)

    def __enter__(self) -> LiveReads:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
