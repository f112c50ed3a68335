# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fused-MoE config tree under SGLANG_MOE_CONFIG_DIR: its paths, its seeding with SGLang's shipped configs, and
where a file of it comes from. Every stage that sets SGLANG_MOE_CONFIG_DIR seeds it (runner.ServerStage, moe_tune)."""

from __future__ import annotations

import os
import shutil

from .. import contract
from . import moe

SHIPPED_MOE_CONFIGS = "srt/layers/moe/moe_runner/triton_utils/configs"
MOE_CONFIG_DIR = contract.CACHES["moe_configs"][0]
MOE_CONFIGS_TREE = MOE_CONFIG_DIR + "/configs"
MOE_WORK_DIR = MOE_CONFIG_DIR + "/.work"


def triton_dir_name(triton_version):
    """SGLang's directory for a Triton version, without a local version suffix (moe.triton_version_dir)."""
    return moe.triton_version_dir(triton_version)[0]


def seed_moe_configs(ctx):
    """Make $SGLANG_MOE_CONFIG_DIR/configs exist and hold SGLang's shipped configs.

    SGLANG_MOE_CONFIG_DIR replaces the shipped configs (it is not an overlay) and SGLang fails
    when <dir>/configs is missing, so every stage that sets it seeds the tree first. Only files
    that are not present are copied: tuned files are never overwritten.
    """
    target = ctx.layout.fs(MOE_CONFIGS_TREE)
    os.makedirs(target, exist_ok=True)
    info = {"tree": MOE_CONFIGS_TREE, "source": None, "copied": 0, "present": 0}
    pkg = ctx.probe.get("sglang_dir")
    source = os.path.join(pkg, SHIPPED_MOE_CONFIGS) if pkg else None
    if not source or not os.path.isdir(source):
        ctx.warn("SGLang's shipped MoE configs were not found (%s); %s holds only tuned configs, and because "
                 "SGLANG_MOE_CONFIG_DIR replaces the shipped ones, other MoE shapes run on default kernel configs"
                 % (source or "sglang is not importable", MOE_CONFIGS_TREE))
        return info
    info["source"] = source
    for root, _dirs, files in os.walk(source):
        rel = os.path.relpath(root, source)
        dest_dir = os.path.normpath(os.path.join(target, rel))
        for name in files:
            if not name.endswith(".json"):
                continue
            dest = os.path.join(dest_dir, name)
            if os.path.exists(dest):
                info["present"] += 1
                continue
            os.makedirs(dest_dir, exist_ok=True)
            tmp = dest + ".tmp"
            shutil.copyfile(os.path.join(root, name), tmp)
            os.replace(tmp, dest)
            info["copied"] += 1
    if info["copied"]:
        ctx.say("seeded %d shipped MoE config files from %s into %s" % (info["copied"], source, MOE_CONFIGS_TREE))
    return info


def moe_config_origin(ctx, contract_path):
    """Where a file of the configs tree comes from: shipped (byte-equal to SGLang's shipped copy) or tuned."""
    pkg = ctx.probe.get("sglang_dir")
    rel = os.path.relpath(contract_path, MOE_CONFIGS_TREE)
    shipped = os.path.join(pkg, SHIPPED_MOE_CONFIGS, rel) if pkg and not rel.startswith("..") else None
    try:
        with open(shipped, "rb") as one, open(ctx.layout.fs(contract_path), "rb") as other:
            return "shipped" if one.read() == other.read() else "tuned"
    except (OSError, TypeError):
        return "tuned"
