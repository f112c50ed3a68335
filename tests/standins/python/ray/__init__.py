# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Stand-in `ray`: only importable. SGLang's fused-MoE tuner imports ray at top level (sglang-facts.md 10);
ray is sglang's optional `ray` extra. The stand-in tuners import this module so that an image without it
fails the way the real tuner does (ModuleNotFoundError: No module named 'ray')."""

__version__ = "2.55.1"
__standin__ = True
