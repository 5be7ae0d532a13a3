"""Where replicates run: this process, a local process pool, or a Dask cluster.

:class:`Executor` sends ``fn(*args, first, last)`` for each chunk of
replicates to an executor and yields each chunk's result as it finishes
(callers put them back in replicate order). Every replicate draws only from
its own random streams, so the results do not depend on the executor.

Stopping is clean on every executor: when the caller stops (an error,
Ctrl-C, or SIGTERM turned into :class:`Terminated` by :func:`terminate_on_sigterm`),
a process pool's workers are terminated and reaped, and a Dask run's futures
are cancelled. Workers ignore Ctrl-C (the parent stops them) and, on Linux,
die with their parent even when it is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import signal
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sim.errors import DosesimError, Terminated

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "Chunk",
    "Executor",
    "LostExecutor",
    "chunks_of",
    "connected",
    "pool_abandoned",
    "terminate_on_sigterm",
]

#: Seconds to wait for a Dask scheduler to answer before giving up (``--connect-timeout``).
DEFAULT_CONNECT_TIMEOUT_S = 10.0

Chunk = tuple[int, int]
"""Replicates ``first`` .. ``last - 1``."""


class LostExecutor(DosesimError):
    """The executor went away mid-run: a pool worker died, or the Dask scheduler did.

    The replicates already finished are not lost where they were checkpointed
    (``dosesim run``): the runner adds the ``--resume`` hint when there are some.
    """


def chunks_of(replicates: int, size: int) -> list[Chunk]:
    """``range(replicates)`` cut into chunks of ``size`` (the last may be shorter)."""
    return [(a, min(a + size, replicates)) for a in range(0, replicates, size)]


@contextmanager
def connected(
    scheduler: Any, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
) -> Iterator[Any]:
    """Connect to a Dask scheduler given by address for the ``with`` block; yields the client.

    For a command that must know the scheduler answers before it touches its
    results folder. Anything else (None, a client) is yielded as it is. Dask's
    own loggers stay quiet while the client is open (a lost scheduler is one
    line of ours).

    Raises
    ------
    DosesimError
        As :class:`Executor`: an unreachable scheduler, a malformed address.
    """
    if not isinstance(scheduler, str):
        yield scheduler
        return
    quiet = _QuietDask()
    try:
        client = _connect(scheduler, connect_timeout_s)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
    finally:
        quiet.restore()


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` in the main thread.

    ``timeout``, batch schedulers and CI stop a command with SIGTERM; Python's
    default is to die at once, leaving a process pool's workers running. Raised
    as an exception instead, it unwinds through :meth:`Executor.map`, which stops
    the workers. Outside the main thread this does nothing.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Executor:
    """Runs chunks of replicates on this process, a local process pool, or a Dask cluster.

    A context manager: entering connects to a Dask scheduler given by address
    (so an unreachable one is reported before anything is written); leaving
    stops the process pool and closes a client it opened. The pool is made on
    first use and kept for later :meth:`map` calls (a forecast's sites search).

    Parameters
    ----------
    workers : int
        Local worker processes; 1 runs in this process.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:8786``) or a client; overrides ``workers``.
    connect_timeout_s : float
        Seconds to wait for the scheduler at an address to answer.
    install : sequence, optional
        Objects every local worker process receives once, when it starts (the pool's
        initializer), rather than with every chunk: the arguments of :meth:`map` that
        are these very objects are sent as a reference. A worker then keeps one copy of
        each (a scenario, say), so that what it caches for it fills once per worker.
        (Dask ships the arguments to each worker once already.)

    Raises
    ------
    DosesimError
        On entering: the scheduler cannot be reached within
        ``connect_timeout_s``, or ``dask.distributed`` is not installed.
    """

    def __init__(
        self,
        workers: int = 1,
        scheduler: Any = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        install: Sequence[Any] = (),
    ) -> None:
        if workers < 1:
            raise DosesimError(f"workers must be >= 1, got {workers}")
        if not connect_timeout_s > 0:
            raise DosesimError(f"connect timeout must be > 0 s, got {connect_timeout_s}")
        self.workers = workers
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._own_client = False
        self._pool: ProcessPoolExecutor | None = None
        self._before: set[Any] = set()
        self._quiet: _QuietDask | None = None
        self._install = tuple(install)

    @property
    def lanes(self) -> int:
        """How many chunks run at once, roughly (for choosing a chunk size).

        On Dask, the cluster's threads once connected (at least 2).
        """
        if self.scheduler is None and self.workers <= 1:
            return 1
        if self._client is not None:
            return max(2, self._dask_threads())
        return max(self.workers, 2)

    def _dask_threads(self) -> int:
        try:
            return int(sum(self._client.nthreads().values()))
        except Exception:  # a scheduler that does not answer: the default
            return 0

    def describe(self) -> dict[str, Any]:
        """What runs the replicates, as recorded in a manifest."""
        if self.scheduler is not None:
            out: dict[str, Any] = {"executor": "dask", "scheduler": _address(self.scheduler)}
            if self._client is not None:
                out["workers"] = self._dask_threads()  # threads on the cluster's workers
            return out
        if self.workers > 1:
            return {"executor": "process pool", "workers": self.workers}
        return {"executor": "this process", "workers": 1}

    def __enter__(self) -> Executor:
        if isinstance(self.scheduler, str):
            self._quiet = _QuietDask()  # a lost scheduler is one line of ours, not Dask's log
            self._client = _connect(self.scheduler, self.connect_timeout_s)
            self._own_client = True
        elif self.scheduler is not None:
            self._client = self.scheduler
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool's workers and close a client this executor opened."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._own_client and self._client is not None:
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                self._client.close(timeout=5)
            self._client = None
        if self._quiet is not None:
            self._quiet.restore()
            self._quiet = None

    def map(
        self, fn: Callable[..., Any], args: tuple[Any, ...], chunks: Sequence[Chunk]
    ) -> Generator[Any, None, None]:
        """``fn(*args, first, last)`` for each chunk, yielded in completion order.

        ``fn`` is a module-level function (it is pickled to the workers); ``args``
        are its leading arguments, the same for every chunk. Stopping the
        iteration early (an error, Ctrl-C, :class:`Terminated`, or ``close()``
        on the iterator) stops the workers at once.

        Raises
        ------
        DosesimError
            The Dask scheduler went away during the run.
        """
        if self.scheduler is not None:
            if self._client is None:
                raise RuntimeError("use the Executor as a context manager to connect to Dask")
            return _dask_results(self._client, fn, args, chunks)
        if self.workers > 1 and len(chunks) > 1:
            return self._pool_results(fn, args, chunks)
        return (fn(*args, first, last) for first, last in chunks)

    def _pool_results(
        self, fn: Callable[..., Any], args: tuple[Any, ...], chunks: Sequence[Chunk]
    ) -> Generator[Any, None, None]:
        if self._pool is None:
            self._before = set(multiprocessing.active_children())
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_worker_init, initargs=(self._install,)
            )
        pool = self._pool
        sent = tuple(_by_reference(a, self._install) for a in args)
        clean = False
        try:
            pending: set[Future[Any]] = set()
            queue = list(chunks)
            while queue or pending:
                try:  # a dead worker breaks the pool: submit and result both say so
                    while queue and len(pending) < 2 * self.workers:  # bounded: flat memory
                        first, last = queue.pop(0)
                        pending.add(pool.submit(_call_installed, fn, sent, first, last))
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    results = [future.result() for future in done]
                except BrokenProcessPool:
                    raise LostExecutor(
                        "a worker process died (stopped by the system, for example for "
                        "lack of memory, or by a signal)"
                    ) from None
                yield from results
            clean = True
        finally:
            if not clean:  # stopped early: the workers go now, not when their chunks are done
                global _ABANDONED
                ours = set(multiprocessing.active_children()) - self._before
                pool.shutdown(wait=False, cancel_futures=True)
                _stop(ours | (set(multiprocessing.active_children()) - self._before))
                self._pool = None
                _ABANDONED = True


# ---------------------------------------------------------------------------
# A local process pool
# ---------------------------------------------------------------------------


_ABANDONED = False
"""Whether a process pool was stopped early in this process (:func:`pool_abandoned`)."""


def pool_abandoned() -> bool:
    """Whether a process pool was stopped early (Ctrl-C, SIGTERM, a dead worker) in this
    process: its workers are reaped, but its management thread, which the interpreter
    joins at exit, can block for good on the pipe of a worker killed mid-message, so
    the command leaves with ``os._exit`` (:func:`sim.cli.console`)."""
    return _ABANDONED


@dataclass(frozen=True)
class _Installed:
    """A reference to the ``index``-th object installed in every worker."""

    index: int


_INSTALLED: tuple[Any, ...] = ()
"""In a worker process: the objects its pool installed when it started."""


def _by_reference(arg: Any, installed: tuple[Any, ...]) -> Any:
    for i, obj in enumerate(installed):
        if arg is obj:
            return _Installed(i)
    return arg


def _call_installed(fn: Callable[..., Any], args: tuple[Any, ...], first: int, last: int) -> Any:
    """In a worker: ``fn(*args, first, last)``, references resolved to the installed objects."""
    resolved = (_INSTALLED[a.index] if isinstance(a, _Installed) else a for a in args)
    return fn(*resolved, first, last)


def _worker_init(installed: tuple[Any, ...] = ()) -> None:
    """In each worker: keep the installed objects; Ctrl-C is the parent's to handle; die
    with the parent (Linux)."""
    global _INSTALLED
    _INSTALLED = installed
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits the parent's
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc/musl
            pass


def _stop(processes: set[Any]) -> None:
    """Terminate and reap worker processes (SIGTERM, then SIGKILL after 5 s)."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5.0)
        if p.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            p.kill()
            p.join(timeout=5.0)


# ---------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """What every chunk of a Dask run shares, scattered to the workers once."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


def _call(task: _Task, first: int, last: int) -> Any:
    return task.fn(*task.args, first, last)


def _address(scheduler: Any) -> str:
    inner = getattr(scheduler, "scheduler", None)
    return str(inner.address if inner is not None else scheduler)


class _QuietDask:
    """Dask's own loggers raised to CRITICAL while a client we opened is in use.

    When the scheduler goes away, Dask logs each failed reconnection with a
    traceback; the command reports it in one line instead. Restored after.
    """

    def __init__(self) -> None:
        import logging

        with contextlib.suppress(ImportError):  # its loggers exist once it is imported
            import distributed  # noqa: F401

        names = ["distributed"] + [
            n for n in logging.root.manager.loggerDict if n.startswith("distributed.")
        ]
        self._levels = {n: logging.getLogger(n).level for n in names}
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL)

    def restore(self) -> None:
        import logging

        for n, level in self._levels.items():
            logging.getLogger(n).setLevel(level)


_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
#: A host name, an IPv4 address, or an IPv6 address in brackets.
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]")


def check_address(address: str) -> str:
    """A Dask scheduler address as ``scheme://host:port`` (``host:port`` means tcp).

    Raises
    ------
    DosesimError
        Not of that form (checked before Dask sees it: a malformed address makes
        Dask's client hang on exit).
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    host, colon, port = rest.rpartition(":")
    well_formed = bool(_HOST.fullmatch(host)) and port.isdigit() and 0 < int(port) < 65536
    if scheme not in _SCHEMES or not colon or not well_formed:
        raise DosesimError(
            f"--scheduler {address}: not a scheduler address; give SCHEME://HOST:PORT, e.g. "
            f"tcp://10.0.0.5:8786 (schemes: {', '.join(_SCHEMES)})"
        )
    return f"{scheme}://{rest}"


def _connect(scheduler: str, timeout_s: float) -> Any:
    scheduler = check_address(scheduler)
    try:
        from distributed import Client
    except ImportError:
        raise DosesimError(
            "--scheduler needs dask.distributed: pip install 'dosesim[dask]'"
        ) from None
    try:
        return Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise DosesimError(
            f"--scheduler {scheduler}: no Dask scheduler answered within {timeout_s:g} s "
            f"({type(exc).__name__}); check the address, or raise --connect-timeout"
        ) from None
    except ValueError as exc:
        raise DosesimError(f"--scheduler {scheduler}: not a scheduler address ({exc})") from None


def _dask_results(
    client: Any, fn: Callable[..., Any], args: tuple[Any, ...], chunks: Sequence[Chunk]
) -> Generator[Any, None, None]:
    from distributed import as_completed

    address = _address(client)
    futures: list[Any] = []
    try:
        task = client.scatter(_Task(fn, args), broadcast=True)
        futures = [client.submit(_call, task, first, last, pure=False) for first, last in chunks]
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
            future.release()
    except DosesimError:
        raise
    except Exception as exc:
        if _lost_scheduler(exc):
            raise LostExecutor(
                f"--scheduler {address}: the Dask scheduler went away during the run "
                f"({type(exc).__name__})"
            ) from None
        raise
    finally:
        if futures:
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                client.cancel(futures)


def _lost_scheduler(exc: BaseException) -> bool:
    """Whether an exception from a Dask future means the scheduler (or the link) is gone."""
    from concurrent.futures import CancelledError

    names = {"CommClosedError", "FutureCancelledError", "CancelledError", "TimeoutError"}
    return isinstance(exc, OSError | CancelledError | TimeoutError) or type(exc).__name__ in names
