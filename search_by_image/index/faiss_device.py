"""FAISS on the GPU when the device setting asks for CUDA and the installed faiss can, else CPU.

faiss-cpu (the default dependency) has no GPU code; installing a GPU build of faiss (conda's
`faiss-gpu`, or a source build) is what turns this on. The saved index stays a CPU index on disk,
so the same files load on any machine; the GPU copy lives only in the service's memory and serves
unfiltered searches (filtered and range searches use the CPU index, whose ID selectors every
index type supports).
"""

from __future__ import annotations

import logging

import faiss

log = logging.getLogger(__name__)
_warned = False


def gpus() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def wanted_gpu(device: str) -> int | None:
    """The GPU number the device setting points at (`auto` means the first, if any)."""
    if device == "auto":
        return 0 if gpus() else None
    if device.startswith("cuda"):
        return int(device.partition(":")[2] or 0)
    return None


def place(index: faiss.Index, device: str, nprobe: int = 0) -> tuple[faiss.Index | None, str]:
    """(GPU copy of `index` or None, where searches run: "cuda:N" or "cpu")."""
    global _warned
    number = wanted_gpu(device)
    if number is None:
        return None, "cpu"
    if number >= gpus():
        if not _warned:
            log.warning(
                "FAISS runs on the CPU: the installed faiss has no GPU support (%d GPUs "
                "visible to it); install a GPU build of faiss to search on %s",
                gpus(),
                device,
            )
            _warned = True
        return None, "cpu"
    try:
        gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), number, index)
        if nprobe:
            faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", nprobe)
    except RuntimeError as exc:  # an index type without a GPU version
        log.warning("FAISS runs on the CPU: this index cannot move to %s (%s)", device, exc)
        return None, "cpu"
    return gpu, f"cuda:{number}"
