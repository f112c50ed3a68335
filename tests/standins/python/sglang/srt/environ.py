# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Environment variables the stand-in honours, with SGLang's parsing rules (sglang-facts.md 6)."""

from __future__ import annotations

import os


def env_bool(name, default=False, env=None):
    """SGLang's EnvBool: true/1/yes/y and false/0/no/n (any case); anything else is an error."""
    env = os.environ if env is None else env
    value = env.get(name)
    if value is None or value == "":
        return default
    value = value.lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n"):
        return False
    raise ValueError('"%s" is not a valid boolean value' % value)


def sglang_cache_dir(env=None):
    env = os.environ if env is None else env
    return os.path.expanduser(env.get("SGLANG_CACHE_DIR") or "~/.cache/sglang")


def third_party_cache_defaults(env=None):
    base = sglang_cache_dir(env)
    return {
        "TRITON_CACHE_DIR": os.path.join(base, "triton"),
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(base, "inductor"),
        "CUDA_CACHE_PATH": os.path.join(base, "nv"),
        "TILELANG_CACHE_DIR": os.path.join(base, "tilelang"),
        # FlashInfer appends .cache/flashinfer to this base itself.
        "FLASHINFER_WORKSPACE_BASE": base,
    }


def redirect_third_party_caches():
    """Done on `import sglang`: setdefault, so values exported by the caller win."""
    for key, value in third_party_cache_defaults().items():
        os.environ.setdefault(key, value)


def deep_gemm_cache_dir(env=None):
    """SGLANG_DG_CACHE_DIR, default $SGLANG_CACHE_DIR/deep_gemm.

    SGLang then overwrites DG_JIT_CACHE_DIR with it, so DG_JIT_CACHE_DIR set by
    the caller has no effect.
    """
    env = os.environ if env is None else env
    return os.path.expanduser(env.get("SGLANG_DG_CACHE_DIR") or os.path.join(sglang_cache_dir(env), "deep_gemm"))


def sglang_jit_cache_dir(env=None):
    """SGLANG_JIT_CACHE_DIR; unset -> ~/.cache/sglang/jit (does not follow SGLANG_CACHE_DIR)."""
    env = os.environ if env is None else env
    return os.path.expanduser(env.get("SGLANG_JIT_CACHE_DIR") or "~/.cache/sglang/jit")


def cute_dsl_cache_dir(env=None):
    """CuTe DSL's file cache (nvidia-cutlass-dsl base_dsl/cache_helpers.py): CUTE_DSL_CACHE_DIR, else
    $TMPDIR/<user>/cutlass_python_cache."""
    env = os.environ if env is None else env
    if env.get("CUTE_DSL_CACHE_DIR"):
        return env["CUTE_DSL_CACHE_DIR"]
    user = env.get("USER") or env.get("USERNAME") or str(os.getuid())
    return os.path.join(env.get("TMPDIR") or "/tmp", user, "cutlass_python_cache")


def triton_env_bool(name, env=None):
    """triton/knobs.py env_bool (libtriton getenv_bool): 1, true, yes, on, y (any case) are true; anything else, or
    unset, is false (tests/contract checks this against the real libtriton)."""
    env = os.environ if env is None else env
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on", "y")
