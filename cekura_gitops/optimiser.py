"""Run Cekura's optimiser for one metric without ever starting a second run.

The protocol, per metric:

1. **claim** — once a concurrency slot is free, record "we are about to start" in the
   state ref (compare-and-swap). A run that finds someone else's claim reports
   `in-flight` and stops.
2. **start** — the one POST, never retried blindly. An ambiguous failure leaves the claim
   in place: a run may exist, and only time tells (the claim expires after twice the
   optimiser timeout: one for that run, one as a margin).
3. **record** — push the progress_id the moment it is returned, nothing in between; a
   stop request (Ctrl-C, SIGTERM) is looked at only before the claim and after this.
4. **poll** — adaptive: fast at first, then every 20 % of the elapsed time, never more
   than 29 s apart, honouring Retry-After: a run's end is noticed within max(0.5 s, 20 %)
   of its length and never more than 30 s late, whatever its length. A later sync
   resumes polling a recorded run instead of starting one: it takes the record over
   (compare-and-swap), and an owner still alive elsewhere sees that when the run ends
   and stands down (`in-flight`), so one run publishes the result. The owner looks in
   its branch's push (`holds`, an atomic push leased on the state ref) or, where that
   push cannot carry it, in a leased no-op push of its own.
5. **finish** — the caller writes the proposal, then `finish()` clears the record and
   remembers the feedback fingerprint, if the record is still ours. A run that times out
   is cancelled and cleared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cekura_gitops import crashpoints
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.errors import CekuraAPIError, GitError, Interrupted
from cekura_gitops.progress import Progress, ProgressState
from cekura_gitops.statestore import (
    END_LINGER,
    LINGER,
    Claim,
    Conflict,
    Gathering,
    LastOptimisation,
    State,
    StateStore,
)

# A claim without a recorded run (its sync died between the claim and the record, or the
# start POST failed ambiguously) expires after this many optimiser timeouts: one for the
# run that POST may have started, one as a margin, since that run cannot be cancelled.
CLAIM_EXPIRY = 2
MIN_POLL = 0.4  # short runs: their end is noticed within 0.5 s, round trip included
# Polls are at most this far apart, so a run's end is noticed at most 30 s late (one
# second is left for the round trip). Blind polling cannot also keep a 45-minute run to
# ~30 polls: that needs 90-second gaps. Lateness is what a user waits for; the poll count
# is a cheap GET, so the bound on lateness wins (bench/run.py prints both).
MAX_POLL = 29.0


# A run's finish as a state change, given the outcome to remember (Optimiser.finishing).
Finishing = Callable[[str], Callable[[State], State]]


def next_poll_delay(elapsed: float, retry_after: float | None = None) -> float:
    """Fast at first, then 20 % of the elapsed time, at most 29 s; Retry-After wins.

    Geometric spacing bounds the lag *relative* to a short run's length with few polls (a
    2 s run takes 6 polls, its end noticed within 0.5 s); the cap bounds it in absolute
    terms for long runs (never more than 30 s late).
    """
    delay = min(MAX_POLL, max(MIN_POLL, 0.2 * elapsed))
    if retry_after is not None:
        delay = max(delay, min(retry_after, 150.0))
    return delay


def run_owner(run_id: str | None = None) -> str:
    """Who holds a claim, for humans reading the state ref (`run_id`: GITHUB_RUN_ID)."""
    where = f"actions run {run_id}" if run_id else socket.gethostname()
    return f"{where} pid {os.getpid()} {uuid.uuid4().hex[:8]}"


class Outcome(enum.Enum):
    FINISHED = "finished"  # the run ended; see .progress
    IN_FLIGHT = "in-flight"  # another run of ours holds the metric
    AMBIGUOUS = "ambiguous"  # the start POST may or may not have started a run
    TIMED_OUT = "timed-out"
    INTERRUPTED = "interrupted"  # a stop was requested; any run started is recorded
    ERROR = "error"


@dataclass(frozen=True)
class Optimisation:
    """What came of one optimisation: how it ended, its progress id and its last poll."""

    outcome: Outcome
    progress_id: str | None = None
    progress: Progress | None = None
    detail: str = ""
    resumed: bool = False
    polls: int = 0


RECORD_ATTEMPTS = 3  # a record push killed with its process group (Ctrl-C) is pushed again


@dataclass
class Optimiser:
    """Starts and follows optimiser runs for one sync invocation.

    `stop` is the sync's stop request (interrupts.StopSignal): polling waits on it, and
    once set no run is claimed or started, and following a run ends at its next wait,
    its progress id safely recorded for the next sync to resume. `sleep`, when given,
    replaces that wait (simulations in bench/).
    """

    client: CekuraClient
    store: StateStore
    timeout: float
    owner: str = dataclasses.field(default_factory=run_owner)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] = time.time
    on_poll: Callable[[str, str, float], None] = lambda slug, status, elapsed: None
    # sync's metrics that may still claim (by slug): claims wait for each other, so a
    # metric that will not claim now (it resumes a run, or waits for a slot) says so.
    gathering: Gathering | None = None
    # metric id -> (progress id, time) of a finish that rides with its branch's push.
    _folded: dict[int, tuple[str, float]] = dataclasses.field(default_factory=dict, repr=False)

    def existing(self, state: State, metric_id: int) -> Claim | None:
        """Our record for the metric; a claim older than the expiry without a run is dropped.

        Keyed by metric id, never slug: a metric renamed while its run is in flight is
        still the same metric, and its run is resumed, not started again.
        """
        record = state.claims.get(metric_id)
        if record is None:
            return None
        if record.progress_id is None and self.clock() - record.claimed_at > CLAIM_EXPIRY * self.timeout:
            return None
        return record

    def expires_at(self, record: Claim) -> float:
        """When a claim without a recorded run stops blocking its metric."""
        return record.claimed_at + CLAIM_EXPIRY * self.timeout

    def optimise(
        self,
        metric_id: int,
        slug: str,
        test_set_ids: Sequence[int] | None,
        fingerprint: str | None,
        *,
        slot: threading.Semaphore | None = None,
        confirm: bool = True,
    ) -> Optimisation:
        """Resume our recorded run for the metric, or claim and start one; then poll to the end.

        `slot` is held only while a run is started and followed (it bounds the runs in
        flight), not while claiming or checking the state ref, which overlap other runs.
        `confirm`: check, once the run has ended, that it is still ours (IN_FLIGHT if it was
        taken over). A caller whose branch push carries that check (`holds`) skips it.
        """
        if self.stop.is_set():
            return Optimisation(Outcome.INTERRUPTED, detail="stopped before starting an optimisation")
        record = self.existing(self.store.load(), metric_id)
        if record is not None and record.progress_id is None:
            return Optimisation(Outcome.IN_FLIGHT, detail=self._blocked(record))
        resumed = record is not None
        if record is not None:
            # A recorded run of ours: its owner crashed, or is still polling it elsewhere.
            # Take it over; a live owner sees that when its run ends and stands down, so
            # one run, not two, publishes the result.
            self._not_claiming(slug)
            record = self._adopt(metric_id, record)
            if record is None:
                return Optimisation(
                    Outcome.IN_FLIGHT, detail="another run finished or took over this run first"
                )
            with self._slot(slot, slug) as got:
                if not got:
                    return _interrupted(record, resumed, 0)
                result = self._poll(slug, record, resumed)
        else:
            result = self._claim_and_follow(metric_id, slug, test_set_ids, fingerprint, slot)
        return self._still_ours(metric_id, result, resumed) if confirm else result

    def _claim_and_follow(
        self,
        metric_id: int,
        slug: str,
        test_set_ids: Sequence[int] | None,
        fingerprint: str | None,
        slot: threading.Semaphore | None,
    ) -> Optimisation:
        """Claim the metric, start one run and follow it to its end."""
        # Claimed only once a slot is free, right before the POST: a sync killed while
        # its metrics queue for slots leaves no claim (nothing was started) to block them.
        with self._slot(slot, slug) as got:
            if not got:
                return Optimisation(Outcome.INTERRUPTED, detail="stopped before starting an optimisation")
            claimed = self._claim(metric_id, slug, fingerprint)
            if claimed is None:
                return Optimisation(Outcome.IN_FLIGHT, detail="another run claimed this metric first")
            crashpoints.hit("claimed", slug)
            if self.stop.is_set():  # stopped during the claim's push: no POST sent, so it goes
                self._clear(metric_id, slug, None)
                return Optimisation(Outcome.INTERRUPTED, detail="stopped before starting an optimisation")
            started = self._start(metric_id, slug, test_set_ids, claimed)
            if isinstance(started, Optimisation):
                return started
            return self._poll(slug, started, False, first_delay=MIN_POLL)

    def _still_ours(self, metric_id: int, result: Optimisation, resumed: bool) -> Optimisation:
        """A finished run is published by its owner: one that was taken over stands down."""
        if result.outcome is Outcome.FINISHED:
            taker = self._taken_over(metric_id)
            if taker is not None:
                return Optimisation(
                    Outcome.IN_FLIGHT,
                    result.progress_id,
                    detail=f"run {result.progress_id} was taken over by {taker}, which publishes its result",
                    resumed=resumed,
                    polls=result.polls,
                )
        return result

    def _taken_over(self, metric_id: int) -> str | None:
        """Who took our run over (another sync resuming it), or None if it is still ours.

        Our view of the state ref is confirmed by a leased no-op push, batched with the
        other metrics' updates: the compare-and-swap says whether anyone moved the ref,
        and only then is it read again (no fetch per metric).
        """
        taker: list[str] = []
        holds = self.holds(metric_id)

        def still_ours(state: State) -> State:
            who = holds(state)
            if who is not None:
                taker.append(who)
                raise Conflict(metric_id)
            return state

        try:
            self.store.update(still_ours, f"check {metric_id}", confirm=True, linger=END_LINGER)
        except Conflict:
            return taker[-1]
        return None

    def holds(self, metric_id: int) -> Callable[[State], str | None]:
        """A condition on the state: None while the metric's run is ours, else who holds it."""

        def ours(state: State) -> str | None:
            holder = state.claims.get(metric_id)
            if holder is None or holder.owner != self.owner:
                return holder.owner if holder else "another run"
            return None

        return ours

    def _not_claiming(self, slug: str) -> None:
        if self.gathering is not None:
            self.gathering.done(slug)

    def _blocked(self, record: Claim) -> str:
        """Why a claim without a recorded run blocks, and until when."""
        until = time.strftime("%H:%M:%S UTC", time.gmtime(self.expires_at(record)))
        return (
            f"claimed by {record.owner} with no run recorded: if that sync died between its start "
            f"POST and recording the run, Cekura may be optimising this metric and there is no way "
            f"to ask; the claim expires at {until}"
        )

    @contextlib.contextmanager
    def _slot(self, slot: threading.Semaphore | None, slug: str) -> Iterator[bool]:
        """Hold a slot (yields False, holding nothing, if a stop came while waiting)."""
        if slot is None:
            yield not self.stop.is_set()
            return
        got = slot.acquire(blocking=False)
        if not got:
            self._not_claiming(slug)  # the claims of metrics holding slots need not wait
        while not got:
            if self.stop.is_set():
                yield False
                return
            got = slot.acquire(timeout=0.1)
        try:
            yield not self.stop.is_set()
        finally:
            slot.release()

    def _start(
        self, metric_id: int, slug: str, test_set_ids: Sequence[int] | None, claimed: Claim
    ) -> Claim | Optimisation:
        """The one start POST, and the progress id recorded the moment it is returned.

        Nothing happens between the two but the record's push: a stop request is only
        looked at after it (sync's signal handler never interrupts this thread), and a
        push that fails (e.g. git killed by the terminal's Ctrl-C) is pushed again.
        """
        try:
            progress_id = self.client.start_optimiser(metric_id, test_set_ids)
        except Interrupted:
            # Raised while waiting to resend a request that certainly did not take effect.
            self._clear(metric_id, slug, None)
            return Optimisation(Outcome.INTERRUPTED, detail="stopped before starting an optimisation")
        except CekuraAPIError as err:
            if err.ambiguous:
                return Optimisation(
                    Outcome.AMBIGUOUS,
                    detail=f"{err}; a run may have started, so it is not resent: the next sync "
                    f"resumes after the claim expires ({int(CLAIM_EXPIRY * self.timeout)} s)",
                )
            self._clear(metric_id, slug, None)
            return Optimisation(Outcome.ERROR, detail=str(err))
        crashpoints.hit("started", slug)
        record = dataclasses.replace(claimed, progress_id=progress_id, started_at=self.clock())
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                self.store.update(lambda s: _put(s, record), f"run {slug} ({metric_id}): {progress_id}")
                break
            except GitError:
                if attempt == RECORD_ATTEMPTS:
                    # Still ours in memory: follow it; finishing clears the claim. Only if
                    # this process dies before that does the claim block until it expires.
                    break
                time.sleep(0.2 * attempt)
        crashpoints.hit("recorded", slug)
        return record

    def _adopt(self, metric_id: int, record: Claim) -> Claim | None:
        """Make the recorded run ours (compare-and-swap); None if it changed meanwhile."""
        adopted = dataclasses.replace(record, owner=self.owner)

        def mutate(state: State) -> State:
            current = state.claims.get(metric_id)
            if current is None or current.progress_id != record.progress_id:
                raise Conflict(metric_id)
            return _put(state, dataclasses.replace(current, owner=self.owner))

        try:
            self.store.update(mutate, f"resume {metric_id}: {record.progress_id}")
        except Conflict:
            return None
        return adopted

    def _claim(self, metric_id: int, slug: str, fingerprint: str | None) -> Claim | None:
        claim = Claim(
            metric_id=metric_id,
            claimed_at=self.clock(),
            owner=self.owner,
            fingerprint=fingerprint,
            slug=slug,
        )

        def mutate(state: State) -> State:
            if self.existing(state, metric_id) is not None:
                raise Conflict(metric_id)
            return _put(state, claim)

        try:
            self.store.update(mutate, f"claim {slug} ({metric_id})", claim=slug)
        except Conflict:
            return None
        return claim

    def _poll(
        self,
        slug: str,
        record: Claim,
        resumed: bool,
        *,
        first_delay: float = 0.0,
    ) -> Optimisation:
        progress_id = record.progress_id
        assert progress_id is not None
        started = record.started_at or record.claimed_at
        polls = 0
        delay = first_delay
        while True:
            elapsed = self.clock() - started
            if elapsed > self.timeout:
                try:
                    self.client.cancel_optimiser(progress_id)
                    note = "cancelled"
                except CekuraAPIError as err:
                    note = f"cancel failed: {err}"
                last = LastOptimisation(record.fingerprint, self.clock(), "timed-out", progress_id)
                self._clear(record.metric_id, slug, last)
                return Optimisation(
                    Outcome.TIMED_OUT,
                    progress_id,
                    detail=f"no result after {int(self.timeout)} s ({note}); raise optimiser.timeout",
                    resumed=resumed,
                    polls=polls,
                )
            if delay and self._wait(min(delay, max(0.0, self.timeout - elapsed) + 0.01)):
                return _interrupted(record, resumed, polls)
            try:
                reply = self.client.optimiser_progress(progress_id)
            except Interrupted:
                return _interrupted(record, resumed, polls)
            except CekuraAPIError as err:
                if err.status == 404:
                    self._clear(record.metric_id, slug, None)
                    return Optimisation(
                        Outcome.ERROR,
                        progress_id,
                        detail=f"Cekura no longer knows run {progress_id}",
                        resumed=resumed,
                        polls=polls,
                    )
                # Keep the record: the run may still be going; the next sync resumes it.
                return Optimisation(Outcome.ERROR, progress_id, detail=str(err), resumed=resumed, polls=polls)
            polls += 1
            crashpoints.hit("polled", slug)
            progress = reply.progress
            elapsed = self.clock() - started
            self.on_poll(slug, progress.status, elapsed)
            if progress.state is not ProgressState.PENDING:
                return Optimisation(Outcome.FINISHED, progress_id, progress, resumed=resumed, polls=polls)
            delay = next_poll_delay(elapsed, reply.retry_after)

    def _wait(self, seconds: float) -> bool:
        """Wait between polls; True if a stop was requested (the wait then ends at once)."""
        if self.sleep is not None:
            self.sleep(seconds)
            return self.stop.is_set()
        return self.stop.wait(seconds)

    def finish(
        self,
        metric_id: int,
        slug: str,
        progress_id: str | None,
        fingerprint: str | None,
        outcome: str,
        *,
        defer: bool = False,
    ) -> bool:
        """Forget the run and remember what it saw (for feedback gating). False, changing
        nothing, if the run is no longer ours: the sync that took it over finishes it.
        True at once if its branch's push already finished it (`finishing`). `defer`: the
        change goes out with the next push of the state (StateStore.defer), and True is
        returned at once: for a run whose result is published, where a lost finish only
        makes the next sync resume the run and find its result there."""
        if not self._carried(metric_id):
            last = LastOptimisation(fingerprint, self.clock(), outcome, progress_id)
            if defer:
                change = _cleared(metric_id, slug, last, self.holds(metric_id))
                self.store.defer(change, f"done {slug} ({metric_id})")
            else:
                try:
                    self._clear(metric_id, slug, last, linger=END_LINGER, holds=self.holds(metric_id))
                except Conflict:
                    return False
        crashpoints.hit("finished", slug)
        return True

    def _carried(self, metric_id: int) -> bool:
        """Whether the run's branch push already finished it (`finishing`'s change landed)."""
        state = self.store.load()
        done = state.last.get(metric_id)
        return (
            metric_id not in state.claims
            and done is not None
            and (done.progress_id, done.completed_at) == self._folded.get(metric_id)
        )

    def finishing(self, metric_id: int, slug: str, progress_id: str, fingerprint: str | None) -> Finishing:
        """`finish` as a state change to push with the run's branch (given the outcome),
        when nothing else is left to do after the branch; the push checks `holds` itself."""

        def change(outcome: str) -> Callable[[State], State]:
            last = LastOptimisation(fingerprint, self.clock(), outcome, progress_id)
            # What `finish` recognises as this change having landed (no other finish of
            # the run, e.g. by a sync that took it over, has this very time).
            self._folded[metric_id] = (progress_id, last.completed_at)
            return _cleared(metric_id, slug, last)

        return change

    def _clear(
        self,
        metric_id: int,
        slug: str,
        last: LastOptimisation | None,
        *,
        linger: float = LINGER,
        holds: Callable[[State], str | None] | None = None,
    ) -> None:
        self.store.update(_cleared(metric_id, slug, last, holds), f"done {slug} ({metric_id})", linger=linger)


def _cleared(
    metric_id: int,
    slug: str,
    last: LastOptimisation | None,
    holds: Callable[[State], str | None] | None = None,
) -> Callable[[State], State]:
    """The state without the metric's claim, remembering `last` (Conflict unless `holds`)."""

    def mutate(state: State) -> State:
        if holds is not None and holds(state) is not None:
            raise Conflict(metric_id)
        claims = {k: v for k, v in state.claims.items() if k != metric_id}
        lasts = dict(state.last)
        if last is not None:
            # Every slug the metric ran under: its branches (and rejected PRs) bear them.
            lasts[metric_id] = last.with_slugs(*_slugs(state.last.get(metric_id)), slug)
        return dataclasses.replace(state, claims=claims, last=lasts)

    return mutate


def _slugs(last: LastOptimisation | None) -> tuple[str, ...]:
    return last.slugs if last is not None else ()


def _put(state: State, record: Claim) -> State:
    return dataclasses.replace(state, claims={**state.claims, record.metric_id: record})


def _interrupted(record: Claim, resumed: bool, polls: int) -> Optimisation:
    return Optimisation(
        Outcome.INTERRUPTED,
        record.progress_id,
        detail=f"stopped following run {record.progress_id}: it goes on in Cekura, and the next "
        "sync resumes it",
        resumed=resumed,
        polls=polls,
    )
