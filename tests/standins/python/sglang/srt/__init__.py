# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
