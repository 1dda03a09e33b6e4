"""Which device the model runs on, decided without importing torch where no GPU can be used.

torch (with its CUDA libraries, a sixth of the memory of a service that imports it: bench/README.md,
"Figures behind the code's choices") is imported to ask about CUDA only where an NVIDIA driver is
installed; without one there is no GPU to find.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from threadpoolctl import threadpool_limits

from search_by_image.errors import SetupError

#: What the NVIDIA kernel driver creates; CUDA cannot run without it (containers get both too).
NVIDIA_DRIVER = (Path("/proc/driver/nvidia/version"), Path("/dev/nvidiactl"))


@functools.cache
def cuda_available() -> bool:
    if not any(path.exists() for path in NVIDIA_DRIVER):
        return False
    try:
        import torch
    except ImportError:  # a serving-only install: ONNX Runtime on the CPU
        return False
    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """`auto` as `cuda` or `cpu`; a CUDA device asked for where there is none is an error."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise SetupError(f"device {device!r} was asked for, but CUDA is not available here")
    return device


def is_gpu(device: str) -> bool:
    return device.startswith("cuda")


def cpu_threads() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def single_threaded_blas() -> None:
    """Make numpy's BLAS single-threaded in a process that answers queries one by one.

    A query's whitening (one row times a 2048 x 384 matrix) left OpenBLAS' second thread spinning
    while faiss' OpenMP team wanted both cores: each search took a hundred times longer
    (bench/README.md, "Figures behind the code's choices"). Batch work (the indexer's whitening)
    keeps its threads.
    """
    threadpool_limits(1, user_api="blas")


@contextlib.contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP team down to this thread for the block (the setting is the calling
    thread's, and restored after it).

    For searches that take a few milliseconds on one core: waking a second thread costs more
    than it saves, and on a loaded machine much more (an 811-image search 48 ms with the default
    threads against 0.2 ms with one, at load 7: bench/README.md, "Figures behind the code's
    choices").
    """
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
