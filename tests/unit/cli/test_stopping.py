"""How the indexer's command line stops: within its grace whatever its unwinding does."""

import os
import signal
import subprocess
import sys

from config import PROJECT_DIR

STUCK_UNWINDING = """
import signal, sys, time
from search_by_image.cli import stopping
stopping.STOP_GRACE_S = 1.0
stopping.on_signals()
try:
    print("ready", flush=True)
    time.sleep(60)
finally:
    time.sleep(60)  # an unwinding that never ends
"""


def test_an_indexer_whose_unwinding_hangs_still_ends_and_says_where_it_was():
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_UNWINDING],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout.readline() == b"ready\n"
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        stderr = process.stderr.read().decode()
        stuck_at = 1 + STUCK_UNWINDING.splitlines().index(
            "    time.sleep(60)  # an unwinding that never ends"
        )
        assert (
            "Still stopping after 1 s" in stderr and f'File "<string>", line {stuck_at} in <module>' in stderr
        )
    finally:
        process.kill()
        process.wait()
