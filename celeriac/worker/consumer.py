"""The consumer: claim messages, decide what each one needs, and hand the runnable ones to the pool.

Per message, in order: parse the headers -> refuse what cannot run (undecodable, refused
content type, unknown task: FAILURE stored where the id is readable, message dead-lettered)
-> expired? (REVOKED, acked, never run) -> due later? (handed back to the broker's delay
store, acked) -> log ``received`` -> over its rate limit? (waits on the timer) -> pool. The
pool job decodes the body, runs the task, stores the result and settles the message
through the :class:`Settler`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.backends.base import StoreRequest
from celeriac.brokers.base import Broker, Delivery
from celeriac.exceptions import (
    ContentDisallowed,
    DecodeError,
    NotRegistered,
    TaskRevokedError,
)
from celeriac.protocol import TaskEnvelope, parse_task
from celeriac.serialization import normalize_accept
from celeriac.task import Context
from celeriac.utils.einfo import ExceptionInfo
from celeriac.worker.execution import Outcome, execute
from celeriac.worker.followups import after_stored, has_followups, send_next
from celeriac.worker.leases import Leases
from celeriac.worker.pools.base import Pool, Prepared
from celeriac.worker.rate_limits import RateLimiter, parse_rate
from celeriac.worker.settle import Settler
from celeriac.worker.state import TaskInfo, WorkerState
from celeriac.worker.time_limits import resolve_limits
from celeriac.worker.timer import Timer

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.events.worker_events import WorkerEvents
    from celeriac.task import Task

__all__ = ["Consumer"]

logger = logging.getLogger("celeriac.worker")

#: An ETA closer than this is run now rather than sent back to wait.
ETA_TOLERANCE = dt.timedelta(milliseconds=5)
#: How long one claim call may block (the stop flag is checked between calls).
CLAIM_TIMEOUT = 0.25
#: The claim window when ``worker_prefetch_multiplier`` is 0 (unlimited in Celery).
UNLIMITED_PREFETCH = 1000


@dataclass(slots=True)
class _Policy:
    """Settings read once at start instead of once per message."""

    accept: frozenset[str]
    result_serializer: str
    acks_late: bool
    acks_on_failure: bool
    ignore_result: bool
    store_errors_even_if_ignored: bool
    dead_letter: bool
    has_backend: bool
    track_started: bool
    rate_limits: bool
    default_rate: float | None
    #: (task_time_limit, task_soft_time_limit), read at start as Celery's worker does.
    time_limits: tuple[float | None, float | None]


class Consumer:
    """Claims messages from ``queues`` and feeds the pool, within the prefetch window."""

    def __init__(
        self,
        app: Celery,
        broker: Broker,
        pool: Pool,
        settler: Settler,
        leases: Leases,
        *,
        queues: list[str],
        hostname: str,
        prefetch_limit: int,
    ) -> None:
        self.app = app
        self.broker = broker
        self.pool = pool
        self.settler = settler
        self.leases = leases
        self.queues = queues
        self.hostname = hostname
        self.prefetch_limit = prefetch_limit if prefetch_limit > 0 else UNLIMITED_PREFETCH
        self.policy = _policy_from(app)
        #: Messages holding a prefetch slot: claimed and not acked yet (Celery's "unacked"),
        #: so an early-acked task frees its slot when it starts, an acks_late one when it ends.
        self._inflight = 0
        #: Claimed messages that have not started (queued for a pool slot, or rate limited).
        self._reserved = 0
        #: Claim again once this few are reserved: each claim then fills half the window or
        #: more, instead of one round trip per freed slot (see _may_claim).
        self._low_water = self.prefetch_limit // 2
        self._slots = threading.Condition()
        self._stopping = threading.Event()
        self.processed = 0
        self.timer = Timer()
        self._rate_limiter = RateLimiter()
        #: Reserved, active and revoked tasks (read by remote control).
        self.state = WorkerState()
        #: The worker's events while task events are on (-E, enable_events), else None.
        self.task_events: WorkerEvents | None = None

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Claim and dispatch until :meth:`stop` is called."""
        self.timer.start()
        while not self._stopping.is_set():
            room = self._wait_for_room()
            if room <= 0:
                continue
            try:
                deliveries = self.broker.claim(self.queues, limit=room, timeout=CLAIM_TIMEOUT)
            except Exception as exc:
                logger.error("consumer: cannot claim from the broker: %r; retrying in 1s", exc)
                self._stopping.wait(1.0)
                continue
            if deliveries:
                self._dispatch(deliveries)

    def stop(self) -> None:
        """Stop claiming; jobs handed to the pool but not started give their message back."""
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        self.timer.stop()  # rate-limited messages waiting there give themselves back

    def _wait_for_room(self) -> int:
        with self._slots:
            while not self._may_claim() and not self._stopping.is_set():
                self._slots.wait(0.5)
            return self.prefetch_limit - self._inflight

    def _may_claim(self) -> bool:
        """A slot is free and the pool is about to run short of reserved messages.

        Waiting for the low-water mark keeps the pool fed (half a window is left to run
        while the claim's round trip is under way) with a few large claims instead of one
        per finished task; with a window of 1 it claims as soon as the slot is free.
        """
        return self._inflight < self.prefetch_limit and self._reserved <= self._low_water

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        self.leases.hold(deliveries)
        with self._slots:
            self._inflight += len(deliveries)
            self._reserved += len(deliveries)
        for delivery in deliveries:
            self._receive(delivery)

    def _release(self, *, started: int = 0, slots: int = 0) -> None:
        """``started`` reserved messages left the queue (they run, or never will here);
        ``slots`` messages were acked or given back and free their prefetch slot."""
        with self._slots:
            self._reserved -= started
            self._inflight -= slots
            if self._may_claim():
                self._slots.notify()

    def _finished(self, delivery: Delivery) -> None:
        """A message that never reached the pool is settled: it frees both counts."""
        self._release(started=1, slots=1)

    def _settled(self, delivery: Delivery) -> Any:
        return lambda: self.leases.release(delivery)

    # --- one message -------------------------------------------------------------------------

    def _receive(self, delivery: Delivery) -> None:
        try:
            envelope = parse_task(delivery.message, accept=self.policy.accept)
            _check_content_type(envelope, self.policy.accept)
        except (DecodeError, ContentDisallowed) as exc:
            signals.task_rejected.send(sender=self, message=delivery.message, exc=exc)
            self._refuse(delivery, delivery.message.id, None, exc)
            self._finished(delivery)
            return
        task = self.app.tasks.get(envelope.name)
        if task is None:
            signals.task_unknown.send(
                sender=self,
                name=envelope.name,
                id=envelope.id,
                message=delivery.message,
                exc=NotRegistered(envelope.name),
            )
            logger.error(
                "Received unregistered task of type %r.\nThe message (task id %s) has been "
                "kept in the dead-letter store: deploy the task, then requeue it with "
                "`celeriac dead requeue <task id>` (see `celeriac dead list`).",
                envelope.name,
                envelope.id,
            )
            self._refuse(delivery, envelope.id, envelope.name, NotRegistered(envelope.name))
            self._finished(delivery)
            return
        now = dt.datetime.now(dt.timezone.utc)
        if envelope.id in self.state.revoked:
            self._discard(delivery, envelope, expired=False)
            self._finished(delivery)
        elif envelope.expires is not None and envelope.expires <= now:
            self._discard(delivery, envelope, expired=True)
            self._finished(delivery)
        elif envelope.eta is not None and envelope.eta > now + ETA_TOLERANCE:
            self._defer(delivery, envelope)
            self._finished(delivery)
        else:
            logger.info("Task %s[%s] received", envelope.name, envelope.id)
            self.state.received(_task_info(envelope, delivery, self.hostname))
            if self.task_events is not None:
                self.task_events.task_received(envelope, task)
            if signals.task_received.has_receivers():
                request = _request_from(envelope, delivery, self.hostname)
                signals.task_received.send(sender=self, request=request)
            self._submit(delivery, envelope, task)

    def _submit(self, delivery: Delivery, envelope: TaskEnvelope, task: Task[Any, Any]) -> None:
        """To the pool now, or later when the task's rate limit says so."""
        rate = self._rate_of(task)
        delay = self._rate_limiter.delay_for(task.name, rate) if rate else 0.0
        if delay > 0:
            self.timer.call_later(delay, lambda: self._submit_now(delivery, envelope, task))
        else:
            self._submit_now(delivery, envelope, task)

    def _submit_now(self, delivery: Delivery, envelope: TaskEnvelope, task: Task[Any, Any]) -> None:
        self.pool.submit(TaskJob(self, delivery, envelope, task))

    def _rate_of(self, task: Task[Any, Any]) -> float | None:
        if not self.policy.rate_limits:
            return None
        if task.rate_limit is not None:
            return parse_rate(task.rate_limit)
        return self.policy.default_rate

    def _refuse(
        self, delivery: Delivery, task_id: str | None, name: str | None, exc: Exception
    ) -> None:
        """A message that cannot run: FAILURE recorded, message dead-lettered (or dropped)."""
        reason = f"{type(exc).__name__}: {exc}"
        logger.error("Refused message %s from queue %r: %s", task_id, delivery.queue, reason)
        if task_id and self.policy.has_backend:
            request = Context(id=task_id, task=name, delivery_info=delivery.delivery_info)
            self.settler.store(StoreRequest(task_id, exc, states.FAILURE, None, request))
        if self.policy.dead_letter:
            self.settler.dead_letter(delivery, reason, done=self._settled(delivery))
        else:
            self.settler.reject(delivery, requeue=False, done=self._settled(delivery))

    def _discard(self, delivery: Delivery, envelope: TaskEnvelope, *, expired: bool) -> None:
        """Expired or revoked, discarded from its headers alone: the body is never decoded."""
        self.state.done(envelope.id)
        if expired:
            logger.info("Discarding expired task %s[%s]", envelope.name, envelope.id)
        else:
            logger.info("Discarding revoked task: %s[%s]", envelope.name, envelope.id)
        request = _request_from(envelope, delivery, self.hostname)
        task = self.app.tasks.get(envelope.name)
        signals.task_revoked.send(
            sender=task, request=request, terminated=False, signum=None, expired=expired
        )
        if self.task_events is not None:
            self.task_events.task_revoked(envelope.id, task, expired=expired)
        if self.policy.has_backend:
            exc = TaskRevokedError("expired" if expired else "revoked")
            self.settler.store(StoreRequest(envelope.id, exc, states.REVOKED, None, request))
        self.settler.ack(delivery, done=self._settled(delivery))

    def _defer(self, delivery: Delivery, envelope: TaskEnvelope) -> None:
        """A message sent with an ETA straight to the queue: the broker keeps it until due."""
        assert envelope.eta is not None
        try:
            self.broker.publish(delivery.queue, delivery.message, eta=envelope.eta.timestamp())
        except Exception as exc:
            logger.error(
                "Could not defer %s[%s]: %r; retrying later", envelope.name, envelope.id, exc
            )
            self.settler.reject(delivery, requeue=True, done=self._settled(delivery))
        else:
            self.settler.ack(delivery, done=self._settled(delivery))

    # --- in a pool thread --------------------------------------------------------------------

    # --- the parts of a job that belong to the consumer ------------------------------------

    def begin(self, job: TaskJob) -> Prepared | None:
        """A pool slot is free for this message: prepare it to run (None: it will not run)."""
        delivery, envelope, task = job.delivery, job.envelope, job.task
        if self._stopping.is_set():
            # Warm shutdown: a job that has not started gives its message back.
            self.state.done(envelope.id)
            self.settler.reject(delivery, requeue=True, done=self._settled(delivery))
            job.release_all()
            return None
        if envelope.id in self.state.revoked:  # revoked while it waited for a slot
            self._discard(delivery, envelope, expired=False)
            job.release_all()
            return None
        policy = self.policy
        try:
            args, kwargs, embed = envelope.decode_body(policy.accept)
        except (DecodeError, ContentDisallowed) as exc:
            self.state.done(envelope.id)
            self._refuse(delivery, envelope.id, envelope.name, exc)
            job.release_all()
            return None
        early_ack = not self._acks_late(task)
        if early_ack:
            self.settler.ack(delivery, done=self._settled(delivery))
            job.release_all()  # acked: its slot is free while it runs (as in Celery)
        else:
            job.release_reserved()
        self.state.started(envelope.id, args, kwargs, acknowledged=early_ack)
        if self.task_events is not None:
            self.task_events.task_started(envelope, task)
        request = _request_from(envelope, delivery, self.hostname, args, kwargs, embed)
        if _first_set(task.track_started, policy.track_started) and policy.has_backend:
            # Written now, not batched: the task's own update_state() writes come after it.
            self._store_started(envelope, request)
        hard, soft = resolve_limits(request, task, policy.time_limits)
        return Prepared(task, request, args, kwargs, hard, soft)

    def run_body(self, prepared: Prepared) -> Outcome:
        """Run the body in this thread."""
        return execute(
            prepared.task,
            prepared.request,
            prepared.args,
            prepared.kwargs,
            result_serializer=self.policy.result_serializer,
        )

    def finish(self, job: TaskJob, request: Context, outcome: Outcome) -> None:
        """The body ended: log, store the result, settle the message, free the slot."""
        delivery, envelope, task = job.delivery, job.envelope, job.task
        try:
            self.state.done(envelope.id)
            outcome = self._terminated_outcome(envelope, outcome)
            self.processed += 1
            _log_outcome(task, envelope, outcome)
            followups = has_followups(request)
            if followups and outcome.state == states.SUCCESS:
                send_next(self.app, request, outcome.retval)
            self._store(task, request, envelope, outcome)
            if self.task_events is not None:
                self.task_events.task_finished(envelope, task, outcome)
            if followups:
                after_stored(
                    self.app,
                    request,
                    outcome.state,
                    outcome.retval,
                    outcome.traceback,
                    self.settler,
                )
            if self._acks_late(task):
                self._settle_late(task, delivery, outcome)
            elif outcome.state == states.REJECTED and outcome.requeue:
                logger.warning(
                    "Task %s[%s] asked to be requeued, but its message was acked "
                    "on receipt (enable acks_late)",
                    envelope.name,
                    envelope.id,
                )
        finally:
            job.release_all()

    def fail(self, job: TaskJob, exc: BaseException) -> None:
        """celeriac itself failed around the task: say so, keep the message as a dead letter."""
        delivery, envelope, task = job.delivery, job.envelope, job.task
        try:
            self.state.done(envelope.id)
            einfo = ExceptionInfo(exc)
            logger.critical(
                "Task %s[%s] INTERNAL ERROR: %r\n%s",
                envelope.name,
                envelope.id,
                exc,
                einfo.traceback,
            )
            signals.task_internal_error.send(
                sender=task,
                task_id=envelope.id,
                args=None,
                kwargs=None,
                request=_request_from(envelope, delivery, self.hostname),
                exception=exc,
                traceback=einfo.tb,
                einfo=einfo,
            )
            # Kept, not lost and not retried in a loop: `celeriac dead requeue` once it is
            # fixed. (If it was acked on receipt already, the broker ignores this.)
            self.settler.dead_letter(
                delivery, f"internal error: {exc!r}", done=self._settled(delivery)
            )
        finally:
            job.release_all()

    def _terminated_outcome(self, envelope: TaskEnvelope, outcome: Outcome) -> Outcome:
        """A task killed by ``revoke(terminate=True)`` ends REVOKED, not as a lost worker."""
        if self.state.pop_terminated(envelope.id) is None or outcome.state == states.SUCCESS:
            return outcome
        return Outcome(states.REVOKED, TaskRevokedError("terminated"), None, outcome.runtime)

    def _acks_late(self, task: Task[Any, Any]) -> bool:
        return task.acks_late if task.acks_late is not None else self.policy.acks_late

    def _store_started(self, envelope: TaskEnvelope, request: Context) -> None:
        started = {"pid": os.getpid(), "hostname": self.hostname}
        try:
            self.app.backend.store_result(envelope.id, started, states.STARTED, request=request)
        except Exception as exc:  # a missing STARTED must not stop the task from running
            logger.warning(
                "Could not record %s[%s] as STARTED: %r", envelope.name, envelope.id, exc
            )

    def _store(
        self, task: Task[Any, Any], request: Context, envelope: TaskEnvelope, outcome: Outcome
    ) -> None:
        if not self.policy.has_backend or outcome.state in (states.IGNORED, states.REJECTED):
            return
        ignore = envelope.ignore_result or _first_set(task.ignore_result, self.policy.ignore_result)
        if ignore:
            store_errors = _first_set(
                task.store_errors_even_if_ignored, self.policy.store_errors_even_if_ignored
            )
            if not (outcome.state == states.FAILURE and store_errors):
                return
        value = outcome.retval.exc if outcome.state == states.RETRY else outcome.retval
        self.settler.store(
            StoreRequest(envelope.id, value, outcome.state, outcome.traceback, request)
        )

    def _settle_late(self, task: Task[Any, Any], delivery: Delivery, outcome: Outcome) -> None:
        done = self._settled(delivery)
        if outcome.state == states.REJECTED:
            self.settler.reject(delivery, requeue=outcome.requeue, done=done)
            return
        if outcome.state == states.FAILURE:
            ack = _first_set(task.acks_on_failure_or_timeout, self.policy.acks_on_failure)
            if not ack:
                self.settler.reject(delivery, requeue=False, done=done)
                return
        self.settler.ack(delivery, done=done)


def _first_set(*values: Any) -> bool:
    for value in values:
        if value is not None:
            return bool(value)
    return False


def _policy_from(app: Celery) -> _Policy:
    conf = app.conf
    acks_on_failure = conf.task_acks_on_failure
    if acks_on_failure is None:
        acks_on_failure = conf.task_acks_on_failure_or_timeout
    return _Policy(
        accept=normalize_accept(conf.accept_content),
        result_serializer=conf.result_serializer,
        acks_late=bool(conf.task_acks_late),
        acks_on_failure=bool(acks_on_failure),
        ignore_result=bool(conf.task_ignore_result),
        store_errors_even_if_ignored=bool(conf.task_store_errors_even_if_ignored),
        dead_letter=bool(conf.worker_dead_letter),
        has_backend=app.result_backend_url is not None,
        track_started=bool(conf.task_track_started),
        rate_limits=not conf.worker_disable_rate_limits,
        default_rate=parse_rate(conf.task_default_rate_limit),
        time_limits=(conf.task_time_limit, conf.task_soft_time_limit),
    )


def _check_content_type(envelope: TaskEnvelope, accept: frozenset[str]) -> None:
    content_type = envelope.message.content_type
    if content_type not in accept:
        raise ContentDisallowed(
            f"Refusing to deserialize untrusted content of type {content_type} "
            f"(accept_content: {', '.join(sorted(accept))})"
        )


def _request_from(
    envelope: TaskEnvelope,
    delivery: Delivery,
    hostname: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    embed: dict[str, Any] | None = None,
) -> Context:
    embed = embed or {}
    headers = envelope.headers
    return Context(
        id=envelope.id,
        task=envelope.name,
        args=args if args is not None else [],
        kwargs=kwargs if kwargs is not None else {},
        retries=envelope.retries,
        eta=headers.get("eta"),
        expires=headers.get("expires"),
        is_eager=False,
        called_directly=False,
        hostname=hostname,
        delivery_info=delivery.delivery_info,
        group=envelope.group,
        group_index=envelope.group_index,
        root_id=envelope.root_id,
        parent_id=envelope.parent_id,
        correlation_id=envelope.properties.get("correlation_id"),
        reply_to=envelope.properties.get("reply_to"),
        origin=envelope.origin,
        timelimit=(envelope.time_limit, envelope.soft_time_limit),
        time_limit=envelope.time_limit,
        soft_time_limit=envelope.soft_time_limit,
        ignore_result=envelope.ignore_result,
        properties=envelope.properties,
        headers=headers,
        shadow=envelope.shadow,
        callbacks=embed.get("callbacks"),
        errbacks=embed.get("errbacks"),
        chain=embed.get("chain"),
        chord=embed.get("chord"),
        stamps=headers.get("stamps"),
        stamped_headers=headers.get("stamped_headers"),
        replaced_task_nesting=headers.get("replaced_task_nesting") or 0,
    )


def _task_info(envelope: TaskEnvelope, delivery: Delivery, hostname: str) -> TaskInfo:
    """What ``inspect reserved`` shows before the body is decoded: the sender's reprs."""
    headers = envelope.headers
    return TaskInfo(
        id=envelope.id,
        name=envelope.name,
        args=headers.get("argsrepr"),
        kwargs=headers.get("kwargsrepr"),
        hostname=hostname,
        delivery_info=delivery.delivery_info,
    )


def _log_outcome(task: Task[Any, Any], envelope: TaskEnvelope, outcome: Outcome) -> None:
    name, task_id = envelope.name, envelope.id
    if outcome.state == states.SUCCESS:
        if logger.isEnabledFor(logging.INFO):
            value = _short_repr(outcome.retval, task.resultrepr_maxsize)
            logger.info("Task %s[%s] succeeded in %.6fs: %s", name, task_id, outcome.runtime, value)
    elif outcome.state == states.RETRY:
        logger.info("Task %s[%s] retry: %s", name, task_id, outcome.retval)
    elif outcome.state == states.FAILURE:
        if outcome.expected:
            logger.info("Task %s[%s] raised expected: %r", name, task_id, outcome.retval)
        else:
            logger.error(
                "Task %s[%s] raised unexpected: %r\n%s",
                name,
                task_id,
                outcome.retval,
                (outcome.traceback or "").rstrip(),
            )
    elif outcome.state == states.IGNORED:
        logger.info("Task %s[%s] ignored", name, task_id)
    elif outcome.state == states.REJECTED:
        logger.warning("Task %s[%s] rejected: %r", name, task_id, outcome.retval)


def _short_repr(value: Any, limit: int) -> str:
    from celeriac.protocol import saferepr

    return saferepr(value, limit)


class TaskJob:
    """One message on its way through the pool (see :class:`~celeriac.worker.pools.base.Job`).

    It counts as reserved until it starts (or is dropped) and holds a prefetch slot until
    its message is acked or given back; each is released exactly once.
    """

    __slots__ = ("_consumer", "_request", "delivery", "envelope", "holds_slot", "reserved", "task")

    def __init__(
        self, consumer: Consumer, delivery: Delivery, envelope: TaskEnvelope, task: Task[Any, Any]
    ) -> None:
        self._consumer = consumer
        self.delivery = delivery
        self.envelope = envelope
        self.task = task
        self._request: Context | None = None
        self.reserved = True
        self.holds_slot = True

    def begin(self) -> Prepared | None:
        prepared = self._consumer.begin(self)
        self._request = prepared.request if prepared is not None else None
        return prepared

    def run(self, prepared: Prepared) -> Outcome:
        return self._consumer.run_body(prepared)

    def finish(self, outcome: Outcome) -> None:
        request = self._request or _request_from(self.envelope, self.delivery, "")
        self._consumer.finish(self, request, outcome)

    def fail(self, error: BaseException) -> None:
        self._consumer.fail(self, error)

    def release_reserved(self) -> None:
        """It has started: no longer reserved (its slot stays held until it is settled)."""
        if self.reserved:
            self.reserved = False
            self._consumer._release(started=1)

    def release_all(self) -> None:
        """Its message is acked or given back: not reserved, and its slot is free."""
        started, slots = int(self.reserved), int(self.holds_slot)
        if started or slots:
            self.reserved = self.holds_slot = False
            self._consumer._release(started=started, slots=slots)
