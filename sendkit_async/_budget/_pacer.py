"""How fast one key may go, learned from its answers: the SDK's one set of pacing rules.

The :class:`Learner` reads every answer and keeps a :class:`Plan`; admission
(:mod:`._admit`, and its twin in ``budget.lua``) only enforces the plan over
the state every caller shares. So the learning exists once, in Python, for the
in-process budget and the Redis one alike.

The learner is small parts, one per kind of evidence, combined by one rule
(:meth:`Learner.key_interval`, the first that names a rate):

1. no fields at all (nginx's ``limit_req``, HAProxy, a bare ``Retry-After``):
   the blind bracket (:mod:`._bracket`) finds the rate by sending;
2. ``RateLimit-Policy``: :class:`~._evidence.Policy`;
3. fractional resets: :class:`~._evidence.PreciseResets` measure it;
4. resets in whole seconds or as epoch moments:
   :class:`~._evidence.RoundedResets` bound the window, and the rate is
   ``limit / window``.

Beside the rate: the latest statement and others' spend (:mod:`._spend`), and
what refusals with fields teach (:mod:`._refusals`). This module adds what
holds for every kind:

* **The statement.** A fractional reset is precise: once our sends since the
  latest answer use up its ``remaining`` (less what others spend meanwhile),
  the next waits for that reset. While no rate is known yet, sends past the
  statement's ``remaining`` wait for the next answer. A rounded reset is not
  enforced: the rate alone paces, since waiting for a reset that may be a
  second late would cost more than it saves.
* **A fixed window** whose end is known well: its quota goes at its start.
* **The margin.** Sends go 2% slower than the learned rate under a window,
  3% elsewhere (a bucket of burst 1 refuses any request that arrives early),
  1% when the rate was found blind.
* **Late sends.** A caller woken late (the loop was busy) does not push back
  every later send: under a window (``Remaining`` counts down with our
  sends) up to 15% of an interval is made up for; elsewhere (a bucket of
  burst 1 refuses two sends closer than its interval) only the margin.

Until the first answer, one request at a time goes out, so a job never opens
with a burst the server would refuse.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs
import cattrs

from ._bracket import Bracket
from ._evidence import Policy, PreciseResets, RoundedResets
from ._protocol import NEVER, Shape
from ._refusals import Refusals
from ._spend import Others, Statement
from ._tuning import TUNING

__all__ = ["Family", "Learner", "Plan"]

_RATE_LIMITED: Final = 429
_STATE: Final = cattrs.Converter()  # a learner as plain data; unknown keys (another version's) are ignored


class Family(enum.IntEnum):
    """What kind of reset the server sends (how much the learner may trust it)."""

    NONE = 0  # no reset seen
    PRECISE = 1  # fractional seconds from now
    WHOLE = 2  # whole seconds from now
    EPOCH = 3  # a moment on the server's clock


@attrs.frozen
class Plan:
    """What admission enforces: the learner's whole output, plain numbers in the budget's time.

    Attributes:
        interval: seconds between sends (0: unpaced).
        cap: the most requests in flight (0: no cap).
        pause_until: no send leaves before this (a 429's pause).
        credit: sends the latest precise statement allows after the send
            numbered ``credit_seq`` (-1: no statement to enforce).
        credit_seq: the sequence number of the statement's own request.
        credit_from: when that statement was made.
        drain: requests per second others spend from the same credit.
        hold_until: when the statement's reset comes (sends past the credit wait for it).
        catchup: how late a send may leave without pushing back the ones after
            it (the next slot still counts from the one it was given).
        quota: with ``period``, a fixed window's whole quota: from
            ``hold_until`` on, each ``period`` allows ``quota`` sends more
            than the credit (0: past ``hold_until`` nothing is enforced).
        period: the window's length in seconds (0: no windows after the hold).
    """

    interval: float = 0.0
    cap: int = 1
    pause_until: float = NEVER
    credit: int = -1
    credit_seq: int = 0
    credit_from: float = NEVER
    drain: float = 0.0
    hold_until: float = NEVER
    catchup: float = 0.0
    quota: int = 0
    period: float = 0.0


@attrs.define
class Learner:
    """One key's pacing knowledge; every method takes the budget's current time in seconds.

    Plain data, so a shared budget can keep it in Redis (:meth:`dump`, :meth:`load`).

    Args:
        max_pause: the longest shared pause a 429 may impose on every caller.
        share: the part of the learned rate to use (1: all of it).
        alone: whether one process sends on the key. Where several share a
            budget (through Redis), a window's quota is never sent at its
            start: each grant crosses a Redis round trip and a process switch
            before it leaves, and a burst from several processes lands on
            both sides of the window's turn (the shared-budget benchmark:
            8% refused with it, none without).
    """

    max_pause: float
    share: float = 1.0
    alone: bool = True  # one process sends on the key (a shared budget's learner says False)
    shape: str = Shape.UNKNOWN.value
    family: int = Family.NONE
    limit: int = 0
    policy: Policy = attrs.Factory(Policy)
    precise: PreciseResets = attrs.Factory(PreciseResets)
    rounded: RoundedResets = attrs.Factory(RoundedResets)
    blind: Bracket = attrs.Factory(Bracket)  # the rate found without fields, by a bracket
    statement: Statement = attrs.Factory(Statement)
    others: Others = attrs.Factory(Others)
    refusals: Refusals = attrs.Factory(Refusals)
    pause_until: float = NEVER  # no send leaves before (a refusal's or a blocked window's pause)
    countdown: bool = False  # Remaining has been seen to fall with our sends: a window, not a bucket
    refills: bool = False  # Remaining came back whole after a long reset: a fixed window
    last_seen: float = NEVER  # the latest answer
    interactive_at: float = NEVER  # the latest answer to an interactive caller

    def dump(self) -> dict[str, Any]:
        """The state as a JSON-ready dict."""
        return _STATE.unstructure(self)  # type: ignore[no-any-return]

    @classmethod
    def load(cls, data: dict[str, Any]) -> Learner:
        """Rebuild from :meth:`dump` (unknown fields, from another version, are ignored).

        Raises:
            cattrs.BaseValidationError: a field of the wrong type, or ``max_pause`` missing.
        """
        return _STATE.structure(data, cls)

    # -- what the answers say ------------------------------------------------

    @property
    def foreign_rate(self) -> float:
        """Requests per second other clients spend from the same key, as far as the answers show."""
        return self.others.rate

    def window(self) -> float:
        """The limiter's window in seconds, as far as the resets let us know it (0: unknown)."""
        if self.family == Family.WHOLE:
            return self.rounded.whole_window()
        if self.family == Family.EPOCH:
            return self.rounded.epoch_window()
        if self.family == Family.PRECISE:
            return self.precise.window()
        return 0.0

    def key_interval(self) -> float:
        """Seconds per request the key sustains, for everyone on it (0: unknown): the one combining rule.

        The first kind of evidence that names a rate wins: the blind bracket
        (when answers carry no fields), a named policy, measured precise
        resets, then a window bounded by rounded resets.
        """
        if self.shape == Shape.BLIND.value:
            return 1.0 / self.blind.rate if self.blind.rate else 0.0
        if self.policy.seconds:
            return self.policy.seconds
        if self.family == Family.PRECISE and self.precise.samples:
            return self.precise.interval(self.limit, self.foreign_rate)
        window = self.window()
        if window and self.limit:
            return window / self.limit
        return self.precise.interval(0, 0.0)

    def interval(self) -> float:
        """Seconds between our sends: the key's rate less others' spend, slowed by 429s, with a margin."""
        key = self.key_interval()
        if not key:
            return 0.0
        # The margin guards the key's limit, which others spend too: take it off
        # the key's rate before their share, so it is never a sliver of ours.
        rate = 1.0 / (key * (1 + self.margin()))
        # Never so slow that two of our answers stop landing in one window:
        # the estimate of others' spend would then never be measured again.
        window = self.window() or self.precise.longest
        floor = max(TUNING.min_share * rate, min(TUNING.min_per_window / window, rate) if window else 0.0)
        ours = max(rate - self.foreign_rate, floor)
        return self.refusals.penalty / (ours * self.share)

    def margin(self) -> float:
        """How much slower than the learned rate sends go, so that jitter on the way lands none early.

        A window only counts requests per window; a bucket of burst 1 refuses
        any request that arrives early, so until the answers show a window
        the margin is wider. Without fields the rates tried are proven or
        refused as sent, so only a sliver is kept for jitter.
        """
        if self.shape == Shape.BLIND.value:
            return TUNING.blind_margin
        return TUNING.margin if self.countdown else TUNING.bucket_margin

    def catchup(self, interval: float) -> float:
        """How late a send may leave and still keep the schedule.

        A window counts requests per window, so a late send may be made up
        for (up to a share of an interval that cannot put one more in any
        window). A bucket of burst 1 refuses two sends closer than its
        interval, so elsewhere only the margin may be made up.
        """
        margin = self.margin()
        share = TUNING.window_catchup if self.countdown else margin / (1 + margin)
        return share * interval

    def plan(self) -> Plan:
        """What admission enforces now.

        Nothing the answers say holds sends back longer than ``max_pause``
        (at least a second) without a fresh answer: a slower rate, or a
        statement's reset further off, lets one request through to ask again.
        """
        ceiling = max(self.max_pause, TUNING.probe_pause)
        said = self.statement
        lag = self.refusals.lag
        burst = self._burst()
        if burst is not None:
            # A fixed window whose end is known: its quota goes at its start, the rest waits.
            period, end = burst
            return Plan(
                interval=0.0,
                cap=0,
                pause_until=self.pause_until,
                credit=said.remaining,
                credit_seq=said.seq,
                credit_from=said.sent,
                drain=self.foreign_rate,
                hold_until=min(end + TUNING.guard + lag, said.sent + ceiling),
                quota=self.limit,
                period=period,
            )
        interval = min(self.interval(), ceiling)
        blind_opening = self.shape == Shape.BLIND.value and not self.blind.rate
        cap = 1 if self.shape == Shape.UNKNOWN.value or blind_opening else 0
        plan = Plan(interval=interval, cap=cap, pause_until=self.pause_until, catchup=self.catchup(interval))
        if said.remaining < 0 or (interval and self.family != Family.PRECISE):
            return plan  # no statement, or a rounded one: the rate alone paces
        # No rate known yet: spend what the latest answer allows, then wait for
        # its reset (an answer in flight may say more sooner). Otherwise a
        # precise statement: sends past it wait for its reset.
        precise = bool(interval)
        return attrs.evolve(
            plan,
            credit=said.remaining,
            credit_seq=said.seq,
            credit_from=said.sent,
            drain=self.foreign_rate if precise else 0.0,
            hold_until=min(said.reset + TUNING.guard + (lag if precise else 0.0), said.sent + ceiling),
        )

    def _burst(self) -> tuple[float, float] | None:
        """A fixed window's length and the end of the latest statement's, when both are known well.

        Known well: the answers show a window (``Remaining`` falls with our
        sends and comes back whole after a reset longer than a few sends'
        worth), nobody else spends from the key (a burst would race them), no
        interactive call was heard of in the last 10 seconds (one arriving
        after a window's quota went would wait for the next window, so the
        window is at most 2 seconds long), and its end to within 5% of its
        length: fractional resets, stamped somewhere between a send and its
        answer, whose ranges close that far (answers that come back fast),
        or an epoch reset whose server clock offset the answers bound that
        closely (a reset rounded to whole seconds never does). The quota
        goes at the latest the end can be. Then the window's quota is sent at its start, as
        the limiter allows, instead of spread over it.
        """
        alone = self.foreign_rate * self.key_interval() < TUNING.alone
        # An interactive caller arriving after the window's quota went would wait for the next one.
        quiet = self.last_seen - self.interactive_at > TUNING.interactive_quiet
        shown = self.refills and self.countdown and self.limit
        if not (shown and alone and quiet and self.alone) or self.statement.remaining < 0:
            return None
        burst = self._window_end()
        return burst if burst is not None and burst[0] <= TUNING.burst_window else None

    def _window_end(self) -> tuple[float, float] | None:
        """The window's length and the end of the latest statement's, as far as the resets tell them."""
        reset = self.statement.reset
        if self.family == Family.PRECISE:
            period = self.policy.seconds * self.limit if self.policy.seconds else self.precise.longest
            end = self.precise.end(period) if period > 0 else None
            return None if end is None else (period, end)
        if self.family == Family.EPOCH:
            period = self.window()
            end = self.rounded.epoch_end(period, reset)
            return None if end is None else (period, end)
        return None

    # -- learning ------------------------------------------------------------

    def observe(
        self,
        now: float,
        *,
        seq: int,
        sent: float,
        status: int,
        received: float | None = None,
        limit: int | None = None,
        remaining: int | None = None,
        reset: float | None = None,
        reset_resolution: float = 0.0,
        reset_server: bool = False,
        window: float | None = None,
        retry: float | None = None,
        blocked: float | None = None,
        interactive: bool = False,
    ) -> None:
        """Learn from the answer to the send numbered ``seq``, which left at ``sent``.

        ``received`` is when the answer arrived (``now`` when not given).
        ``reset``, ``retry`` and ``blocked`` are moments in the budget's time;
        ``reset_server`` says the reset was an epoch timestamp, so it carries
        the server's clock offset. ``blocked`` is when a longer window with
        nothing left resets: nothing leaves before (within ``max_pause``).
        ``interactive`` says the send was an interactive caller's.
        """
        self.last_seen = now
        if interactive:
            self.interactive_at = now
        if blocked is not None and blocked > now:
            self.pause_until = max(
                self.pause_until, min(blocked + TUNING.guard, now + max(self.max_pause, TUNING.probe_pause))
            )
        received = now if received is None else received
        if remaining is not None and reset is not None:
            self._statement(
                seq, sent, status, limit, remaining, reset, reset_resolution, reset_server, window
            )
            if self.family == Family.PRECISE:
                self.precise.bound_end(reset, received - sent)
        elif self.shape == Shape.UNKNOWN.value:
            self.shape = Shape.BLIND.value
        if self.shape == Shape.BLIND.value and not self.blind.rate:
            # The opening: one request per first latency (within bounds), from now on.
            low, high = TUNING.first_rates
            opening = min(max(1.0 / max(received - sent, TUNING.millisecond), low), high)
            self.blind.pace(opening, max(now, self.pause_until), seq + 1)
        if status == _RATE_LIMITED:
            self._rate_limited(now, sent, received, reset, retry, reset_resolution, seq)
            return
        self.refusals.success()
        if self.shape == Shape.BLIND.value:
            self.blind.success(now, seq, self.interval(), self.pause_until)

    def _statement(
        self,
        seq: int,
        sent: float,
        status: int,
        limit: int | None,
        remaining: int,
        reset: float,
        resolution: float,
        server: bool,
        window: float | None,
    ) -> None:
        self.shape = Shape.HEADERS.value
        if limit is not None and limit > 0:
            if limit != self.limit:
                self.precise.longest = 0.0  # a new policy: its window is yet to be seen
            self.limit = limit
            self.policy.note(limit, window)
        if server:
            self.family = Family.EPOCH
            self.rounded.note_epoch(sent, reset, resolution)
        elif resolution >= 1:
            if self.family == Family.EPOCH:
                # The server now counts resets from now (its limiter changed, or another server
                # answers on the key): what its epoch moments showed no longer holds.
                self.family, self.rounded = Family.NONE, RoundedResets()
            self.family = max(self.family, Family.WHOLE)
            # The value as sent was a whole number of seconds from the decision.
            self.rounded.note_whole(sent, reset)
        elif self.family in {Family.NONE, Family.PRECISE}:
            self.family = Family.PRECISE
            # A refused request's reset says nothing about the rate, and "some
            # left, no reset" (a bucket with tokens to spare) nothing about when.
            if status != _RATE_LIMITED and reset > sent + TUNING.guard:
                self.precise.note(sent, remaining, reset)
        said = self.statement
        if seq > said.seq and status != _RATE_LIMITED and said.seq >= 0:
            self._foreign(seq, sent, remaining, reset, server)
            self._refill(remaining, reset)
        if self._said_later(seq, remaining, reset, server):
            self.statement = Statement(seq, sent, remaining, reset)

    def _said_later(self, seq: int, remaining: int, reset: float, server: bool) -> bool:
        """Whether this answer is the server's latest word, after the statement kept so far.

        Requests overtake each other on the way, so within one window the
        server's order is that of its falling count, not of our sends: the
        lowest ``remaining`` is the latest decision. Sends after it are then
        counted again by admission, a few too many rather than one too few.
        Across windows (or where resets are rounded) the later send's word wins.
        """
        said = self.statement
        if said.seq >= 0 and self._same_reset(reset, server):
            return remaining < said.remaining or (remaining == said.remaining and seq > said.seq)
        return seq > said.seq

    def _same_reset(self, reset: float, server: bool) -> bool:
        """Whether ``reset`` is the latest statement's, as far as its resolution tells (not rounded)."""
        if server:
            return abs(reset - self.statement.reset) < 2 * TUNING.millisecond  # a millisecond either way
        if self.family == Family.PRECISE:
            return abs(reset - self.statement.reset) <= 2 * TUNING.guard + TUNING.millisecond
        return False

    def _refill(self, remaining: int, reset: float) -> None:
        """Note a window coming back whole: a reset a window later, and most of the quota left again.

        A bucket's reset is its next token, a send's worth away, and its
        ``Remaining`` grows back a token at a time.
        """
        step = TUNING.refill_spans * self.key_interval()
        said = self.statement
        if self.limit and reset - said.reset > step and remaining - said.remaining >= self.limit / 2:
            self.refills = True

    def _foreign(self, seq: int, sent: float, remaining: int, reset: float, server: bool) -> None:
        """Count what others spent between the latest statement and this newer one of the same window."""
        said = self.statement
        ours = seq - said.seq
        elapsed = sent - said.sent
        if elapsed <= 0:
            return
        if self.family == Family.PRECISE or server:
            same = self._same_reset(reset, server)
        else:
            same = (
                remaining + ours <= said.remaining
                and reset - sent <= said.reset - said.sent + TUNING.millisecond
            )
            same = same and elapsed < self.window()
        if not same:
            self.others.fade(sent, self.window())
            return
        if remaining < said.remaining:
            self.countdown = True
        self.others.measure(sent, said.remaining - remaining - ours, elapsed)

    def _rate_limited(
        self,
        now: float,
        sent: float,
        received: float,
        reset: float | None,
        retry: float | None,
        resolution: float,
        seq: int,
    ) -> None:
        if sent <= self.refusals.last:
            return  # sent before the previous 429 arrived: the same event, already paused for
        if self.shape == Shape.BLIND.value:
            # Without fields every caller pauses as the bracket says, then it paces anew.
            until, following = self.blind.refused(now, received, retry, seq, self.max_pause)
            self.pause_until = max(self.pause_until, until)
            if following is not None:
                self.blind.pace(following, max(now, self.pause_until), seq + 1)
            return
        until = self.refusals.refused(
            now,
            sent=sent,
            reset=reset,
            retry=retry,
            precise=self.family == Family.PRECISE and reset is not None and resolution < 1,
            interval=self.interval(),
            countdown=self.countdown,
            max_pause=self.max_pause,
        )
        self.pause_until = max(self.pause_until, until)
