"""How the indexer's worker processes start: forked from a server process (forkserver), never from
the caller itself; and that server started early, beside the caller's own imports.

A worker forked from the caller inherits what the caller holds at that moment. The service's
background indexer and watch mode start workers beside searches: a worker saw the decode budget
used up by the uploads in flight and skipped every photo as busy, and one that freed an inherited
ONNX Runtime session waited for ever on thread-pool threads that exist only in the caller (a test
hung in a random order; gdb). Python 3.14 made forkserver Linux's default for such reasons. The
server imports the local engine once (preload), so each worker is still a cheap fork of a process
that has the package imported, and builds its own runtime session.

A worker ends with the process it works for (`end_with`), whatever stops that one: SIGKILL gives
it no chance to stop its workers, and the server cannot either, since every worker holds the
server's keep-alive pipe open (multiprocessing passes it to each), so the server lives as long
as they do.

Kept light (multiprocessing only): the indexer's command line imports it before the rest of the
package, to start the server first (`start_early`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import select
import signal
import threading
import time
from multiprocessing.context import BaseContext

#: What the server imports once, before it forks any worker.
PRELOAD = "search_by_image.indexing.local_engine"


def context() -> BaseContext:
    """The worker processes' start method: forkserver, or spawn where there is none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload([PRELOAD])
    return server


def start_early() -> None:
    """Start the server now, for worker processes started later by this process.

    The server's own start (a Python importing numpy, Pillow, pydantic and the package) took as
    long as the indexer's: started when the first worker was asked for, it came after the
    indexer's imports and before any image (bench/README.md, camera indexing). Started first, it
    runs on the second core while the indexer imports and plans. A run with nothing to embed
    leaves it unused; it exits with this process."""
    if context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def stop() -> None:
    """Stop the server at once, even halfway through its imports: for a process that is about to
    exit. The server holds the process' stdout and stderr, so whoever reads them to the end (a
    shell pipe, `subprocess.run`) also waited for it: a run on an unchanged folder, which never
    uses the server, took 2 s longer on a loaded machine while it finished importing."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)  # no public API
    if pid is not None:  # not reaped here: multiprocessing does, and starts a new one if asked
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def end_with(pid: int) -> None:
    """In a worker process: kill this process as soon as process `pid` (its caller) has ended.

    A daemon thread waits on a pidfd (Linux 5.3+; elsewhere it polls every second). Called
    where the worker starts (a pool's initializer), with the caller's pid passed to it."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:  # ended before this worker started
        os.kill(os.getpid(), signal.SIGKILL)
    except (AttributeError, OSError):  # no pidfd here
        threading.Thread(target=_poll, args=(pid,), name="end-with-caller", daemon=True).start()
    else:
        threading.Thread(target=_wait, args=(handle,), name="end-with-caller", daemon=True).start()


def _wait(handle: int) -> None:
    select.select([handle], [], [])  # readable once the process has ended
    os.kill(os.getpid(), signal.SIGKILL)


def _poll(pid: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os.kill(os.getpid(), signal.SIGKILL)
        except PermissionError:  # alive, another user's (a reused pid is not ours to watch)
            pass
