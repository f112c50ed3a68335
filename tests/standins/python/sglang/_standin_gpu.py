# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""The pretend GPUs of this host, described once for every stand-in.

nvidia-smi, the server, the fused-MoE tuner and dcgm-exporter all read the GPU
description from here, so they agree. Values come from the environment:

    SGLANG_STANDIN_GPU_NAME      default "NVIDIA H100 80GB HBM3"
    SGLANG_STANDIN_COMPUTE_CAP   default "9.0"
    SGLANG_STANDIN_DRIVER        default "570.148.08"
    SGLANG_STANDIN_CUDA          default "12.8"
    SGLANG_STANDIN_GPU_MEM_MIB   default "81559"
    SGLANG_STANDIN_GPU_COUNT     default "1" (0 = no GPU visible)
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

DEFAULTS = {
    "SGLANG_STANDIN_GPU_NAME": "NVIDIA H100 80GB HBM3",
    "SGLANG_STANDIN_COMPUTE_CAP": "9.0",
    "SGLANG_STANDIN_DRIVER": "570.148.08",
    "SGLANG_STANDIN_CUDA": "12.8",
    "SGLANG_STANDIN_GPU_MEM_MIB": "81559",
    "SGLANG_STANDIN_GPU_COUNT": "1",
}


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_cap: str
    driver_version: str
    cuda_version: str
    memory_total_mib: int

    @property
    def uuid(self) -> str:
        return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, "%s/%d" % (self.name, self.index)))

    @property
    def pci_bus_id(self) -> str:
        return "00000000:%02X:00.0" % (0x18 + self.index)

    @property
    def device_name(self) -> str:
        """The name as SGLang puts it into MoE config file names (spaces -> underscores)."""
        return self.name.replace(" ", "_")

    @property
    def sm(self) -> int:
        """Compute capability as one number: "9.0" -> 90."""
        major, _, minor = self.compute_cap.partition(".")
        return int(major) * 10 + int(minor or 0)

    @property
    def flashinfer_arch(self) -> str:
        """FlashInfer's arch directory name: "90a" on Hopper and later, "80" before."""
        return "%d%s" % (self.sm, "a" if self.sm >= 90 else "")

    @property
    def memory_total_gib(self) -> float:
        return self.memory_total_mib / 1024.0


def _setting(env, key):
    value = env.get(key, "")
    return value if value.strip() else DEFAULTS[key]


def gpus(env=None):
    """The visible GPUs (an empty list when SGLANG_STANDIN_GPU_COUNT is 0)."""
    env = os.environ if env is None else env
    count = int(_setting(env, "SGLANG_STANDIN_GPU_COUNT"))
    return [
        Gpu(
            index=i,
            name=_setting(env, "SGLANG_STANDIN_GPU_NAME"),
            compute_cap=_setting(env, "SGLANG_STANDIN_COMPUTE_CAP"),
            driver_version=_setting(env, "SGLANG_STANDIN_DRIVER"),
            cuda_version=_setting(env, "SGLANG_STANDIN_CUDA"),
            memory_total_mib=int(_setting(env, "SGLANG_STANDIN_GPU_MEM_MIB")),
        )
        for i in range(count)
    ]


def first_gpu(env=None):
    """GPU 0, or None when no GPU is visible."""
    found = gpus(env)
    return found[0] if found else None
