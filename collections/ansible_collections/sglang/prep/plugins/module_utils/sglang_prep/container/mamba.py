# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The priming policy's --max-mamba-cache-size, per model (the canonical settings' hard policy, and where SGLang forbids it).

The policy passes ``--max-mamba-cache-size 1`` to every stage server. For a model that is not hybrid SGLang keeps
no mamba state and the value changes nothing. A hybrid (mamba / linear-attention) model gets one request slot per
``mamba_ratio`` state slots (sglang 0.5.23 mem_cache/kv_cache_configurator.py::resolve_max_num_reqs:
``max_mamba_cache_size // _calculate_mamba_ratio()``), so 1 would leave it no request slot and the server would
refuse to start ("state cache is too small to serve any requests"). For hybrid models the policy therefore passes
the smallest value that serves one request: the ratio itself, computed as _calculate_mamba_ratio does, and
records the deviation and its reason. tests/contract/test_zoo.py checks both numbers against SGLang's own code.
"""

from __future__ import annotations

from .. import server_flags

POLICY_VALUE = 1  # the canonical setting (contract.CANONICAL_SETTINGS)
# configs/hybrid_arch.py::mambaish_config: the HF config classes SGLang gives a mamba state cache (by model_type)
HYBRID_MODEL_TYPES = frozenset((
    "qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "jet_nemotron", "jet_vlm",
    "nemotron_h", "nemotron_h_puzzle", "falcon_h1", "lfm2", "lfm2_moe", "lfm2_vl", "zaya", "mamba2", "mamba",
    "falcon_mamba", "kimi_linear", "bailing_hybrid",
))
# kv_cache_configurator.py MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO
BASE_RATIO = 3


def is_hybrid(config):
    """True when SGLang gives the model a mamba state cache (mambaish_config), from its config.json."""
    if not isinstance(config, dict):
        return False
    for section in (config, config.get("text_config"), config.get("llm_config")):
        if isinstance(section, dict) and section.get("model_type") in HYBRID_MODEL_TYPES:
            return True
    if config.get("model_type") == "granitemoehybrid":
        return "mamba" in (config.get("layer_types") or ())
    return False


def ratio(values):
    """State slots per request: kv_cache_configurator.py::_calculate_mamba_ratio with the strategy
    arg_groups/overrides.py::_mamba_radix_cache_resolution picks on CUDA (extra_buffer while the overlap
    schedule or paging is on), and allocation_sizing.py::get_mamba_tracking_slots."""
    if values.get("disable_radix_cache"):
        return 1
    overlap = not values.get("disable_overlap_schedule")
    strategy = values.get("mamba_radix_cache_strategy") or "auto"
    if strategy == "auto":
        paging = int(values.get("page_size") or 1) > 1
        strategy = "extra_buffer" if (overlap or paging) else "no_buffer"
    if strategy != "extra_buffer":
        return BASE_RATIO
    return BASE_RATIO + (2 if overlap else 1)


def policy(config, extra_args):
    """{hybrid, value, ratio, source, deviation}: the --max-mamba-cache-size the stage servers get and why.

    ``value`` None: the extra server arguments set it themselves (they win; recorded as the source).
    """
    values = server_flags.read_args(extra_args)
    hybrid = is_hybrid(config)
    out = {"hybrid": hybrid, "value": POLICY_VALUE, "ratio": None, "source": "policy", "deviation": None}
    if values.get("max_mamba_cache_size") is not None:
        out.update(value=None, source="extra server argument --max-mamba-cache-size %s" % values["max_mamba_cache_size"])
        return out
    if hybrid:
        slots = ratio(values)
        out.update(value=slots, ratio=slots, deviation=(
            "--max-mamba-cache-size %d instead of the policy's %d: this model is hybrid (mamba/linear-attention), "
            "SGLang serves max_mamba_cache_size // %d requests at once with these arguments (state slots per request, "
            "kv_cache_configurator.py _calculate_mamba_ratio), and at %d it refuses to start; %d is the smallest value "
            "that serves one request" % (slots, POLICY_VALUE, slots, POLICY_VALUE, slots)))
    return out
