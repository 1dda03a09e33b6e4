"""How the indexer's command line stops: the first SIGINT or SIGTERM unwinds it as Ctrl-C does
(worker processes killed, the writer lock let go, finished shards kept for the next run), for at
most STOP_GRACE_S; a second signal, or the grace running out, ends it at once. Ending at once
loses nothing: finished shards are on disk and a commit is crash-safe."""

import faulthandler
import os
import signal
import sys
import threading

#: How long the unwinding after a first SIGINT or SIGTERM may take before the indexer ends anyway.
STOP_GRACE_S = 60.0


def _stopping(signum: int, _frame: object) -> None:
    """The first SIGINT or SIGTERM: unwind (KeyboardInterrupt, SystemExit), at most STOP_GRACE_S;
    any later one: exit now, not in the middle of the unwinding it would otherwise interrupt."""
    signal.signal(signal.SIGTERM, _stop_now)
    signal.signal(signal.SIGINT, _stop_now)
    watchdog = threading.Timer(STOP_GRACE_S, _stopped_too_slowly, (signum,))
    watchdog.daemon = True  # a run that ends in time does not wait for it
    watchdog.start()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _stop_now(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _stopped_too_slowly(signum: int) -> None:
    """Still unwinding after STOP_GRACE_S: say where each thread is (for a bug report), then end."""
    print(f"Still stopping after {STOP_GRACE_S:.0f} s; ending now. Where it was:", file=sys.stderr)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(128 + signum)


def on_signals() -> None:
    """Stop on SIGINT and SIGTERM as above (a process of its own: not for tests' callers)."""
    signal.signal(signal.SIGTERM, _stopping)
    signal.signal(signal.SIGINT, _stopping)
