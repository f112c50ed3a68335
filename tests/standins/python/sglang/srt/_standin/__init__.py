# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Server internals of the stand-in (no real-SGLang counterpart): logs, model, memory, caches, http, server."""
