# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The classified error every layer raises and reports (error_type + a message a person can act on)."""

from __future__ import annotations

# ---------------------------------------------------------------- error types (stage JSON error_type)
# Every classified failure, in one place (ERROR_TYPES names the same tuple). errors.py imports nothing
# of the package, so every layer can raise PrepError.
ERROR_TYPES = (
    "permissions_unexpected",
    "insufficient_disk",
    "lock_timeout",
    "port_busy",
    "readiness_timeout",
    "server_exited_early",
    "generate_failed",
    "not_enough_memory",
    # a hybrid (mamba/linear-attention) model's state cache holds no request (--max-mamba-cache-size too small)
    "mamba_cache_too_small",
    "config_drift",
    "nvrtc_not_found",
    # DeepGEMM's JIT (NVCC only in sgl-deep-gemm 0.2.3.post2) found no executable nvcc: the CUDA toolkit is missing
    "nvcc_not_found",
    # deep_gemm: the model uses DeepGEMM, the server ran, and no DeepGEMM kernel was compiled (import failed, SM < 90,
    # disabled): the message names the reason
    "deepgemm_inactive",
    "libcuda_missing",
    "container_not_running",
    "bad_pointer",
    "bad_manifest",
    "tuner_failed",
    # moe_tune: a piece the tuner needs is missing (the tuner, tune_down_moe.py beside it, or the ray module)
    "tuner_unavailable",
    "model_not_found",
    # the model directory exists but its config.json is unreadable or not a JSON object, or it leaves the models root
    "model_invalid",
    # a prep_result.json that cannot be read (validate); the next prime rebuilds it from the stage files
    "bad_prep_result",
    "bad_input",
    # a primed stage's recorded signature no longer matches the host (validate, check mode)
    "signature_drift",
    "interrupted",
    "internal_error",
    # serve_check: the serving configuration JIT-compiled (a cache grew, a JIT or Triton autotune log line appeared,
    # or the server refused to compile a missing SGLang JIT kernel and exited)
    "jit_at_serve_time",
    # serve: a stage was not primed with the serving settings (or never primed); nothing was started
    "not_primed",
    # serve: the serving server outlived SIGTERM to its supervisor and the kill that follows
    "server_not_stopped",
    # inductor: every start of its compiled server, up to INDUCTOR_MAX_STARTS, still added cache files
    "inductor_not_settled",
    # plan: a probed version (sglang, torch, triton, flashinfer, deep_gemm) differs from FIDELITY_STACK and
    # prime_require_pinned_stack is on
    "stack_unpinned",
    # container mode (prime_container_mode, serve): Prometheus did not load the rewritten configuration after SIGHUP
    "telemetry_reload_failed",
    # host-side failures the prime role reports (before or around the container)
    "bad_host_user",
    "engine_unreachable",
    "gpu_runtime_missing",
    "pointer_timeout",
    # the image cannot be pulled (or, with prime_image_pull never, is not on the host); nothing was changed
    "image_unavailable",
    # the Docker engine refused to create or start the container with the new settings
    "container_start_failed",
    # fleet report: a targeted host that left no prime report
    "unreachable",
    "not_run",
    # cache bundles (container/bundle.py): a member that would write outside the caches (absolute path, '..',
    # a link leaving its cache or passing through another link, another model's signature); a manifest that is not
    # the checked schema, a checksum, size or truncation fault; a receiver whose
    # signature differs from the bundle's; no bundle to install (its builder failed, or it is not there)
    "bundle_unsafe",
    "bundle_corrupt",
    "bundle_mismatch",
    "bundle_unavailable",
    # an entry the bundle carries exists on this host with other bytes: nothing was installed, the host primes itself
    "bundle_conflict",
    # registry bundles (module_utils/_oci_bundle.py, host side): an artifact unsigned or signed by a key the allowed
    # signers do not list; the publisher's signing failed; the registry refused the credentials, its certificate is
    # not trusted, it cannot be reached, or it answered with something else
    "bundle_untrusted",
    "bundle_sign_failed",
    "registry_auth",
    "registry_tls",
    "registry_unavailable",
    "registry_error",
)


class PrepError(Exception):
    """A failure with an ``error_type`` from ERROR_TYPES and actionable text."""

    def __init__(self, error_type, message, **details):
        if error_type not in ERROR_TYPES:
            raise ValueError("unknown error_type %r" % error_type)
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.details = details

    def as_dict(self):
        out = {"error_type": self.error_type, "message": self.message}
        out.update(self.details)
        return out
