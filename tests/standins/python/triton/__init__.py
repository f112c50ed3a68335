# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Stand-in `triton`: only the version. The real wheel is part of the GPU stack; SGLang reads
triton.__version__ to pick the MoE config directory (3.4.0 -> configs/triton_3_4_0)."""

__version__ = "3.4.0"
__standin__ = True
