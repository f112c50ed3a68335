# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stage registry: one row per priming stage, in the order the stages run.

Everything the code says *about* a stage comes from here: the stage order and each stage's
cache (contract.STAGE_ORDER and contract.STAGE_CACHE), whether it launches an SGLang server and
with which switches (container/argv.py), the fields of its signature (container/signature.py),
the stages it depends on, where its records live (apart from its cache, which may be none) and its
one-line summary (the CLI help). The runner classes in
container/ (stages.RUNNERS) implement the behaviour; tests/unit/plugins/module_utils/sglang_prep/test_runtime_registry.py fails when a
runner and its row disagree.

Stdlib only, and no imports from the package: contract.py imports this module, host modules may
import it as well, and nothing under container/ is needed to read it.
"""

from __future__ import annotations

# The hardware/toolchain tuple every stage's signature holds. Hosts that share
# these values share a signature group.
GROUP_FIELDS = (
    "device_name", "compute_capability", "cuda", "driver_version",
    "torch_version", "triton_version", "sglang_version", "sglang_commit",
)
# Signature inputs (not probed) that every stage records.
COMMON_INPUTS = ("tp", "model_slug", "model_config_sha256")
# The inputs that change which kernels a server compiles (container/serving_inputs.py): serving args as SGLang
# will parse them (None = left to SGLang), the attention and sampling backends as resolved, the checkpoint's
# quantization files and the kernel-relevant environment of the servers. Separate fields, so a re-prime names one.
SERVER_KERNEL_INPUTS = (
    "max_running_requests", "cuda_graph_max_bs_decode", "cuda_graph_bs_decode", "torch_compile_max_bs", "dtype",
    "quantization", "ep_size", "moe_runner_backend", "attention_backend", "sampling_backend", "page_size",
    "moe_a2a_backend", "json_model_override_args", "speculative_algorithm", "speculative_draft_model_path",
    "speculative_moe_runner_backend", "quantization_files_sha256", "server_env",
)
# Signature inputs that every stage which launches a server records as well.
# runtime_env: the switches the runtime itself sets on its servers (contract.SERVER_ENV, and the inductor probe's
# TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER): a server primed without them compiled and tuned other things.
SERVER_INPUTS = ("settings", "server_flags", "extra_server_args", "runtime_env",
                 "max_mamba_cache_size") + SERVER_KERNEL_INPUTS
# The serving args that change the shapes (or the file name) the MoE tuner tunes for, and the checkpoint's
# quantization files: moe_tune records them too.
MOE_SHAPE_INPUTS = ("ep_size", "quantization", "disable_shared_experts_fusion", "json_model_override_args",
                    "moe_runner_backend", "moe_a2a_backend", "dtype", "quantization_files_sha256")
# Probed: GPU memory sizes the default decode CUDA-graph batch sizes and the memory pools (sglang-facts.md 2).
SERVER_PROBED = ("gpu_memory_mib",)
# The server switch that makes a server stage a warm-up: metrics on, so its tokens reach Prometheus.
METRICS_SWITCH = "--enable-metrics"


class Stage(object):
    """One row of the registry.

    name        the stage, as the CLI and the stage JSON name it
    cache       the contract.CACHES entry its output lands in, or None for a stage that leaves nothing on disk
                (a warm-up whose work lives in the server process, such as a CUDA-graph capture)
    records     the directory under /profiles that holds its per-model records (<records>/<model_key>/signature.json,
                deep_gemm's compile.log): a contract.CACHES name (that cache's directory) or a name of its own.
                Defaults to the cache; no two stages may share one (check_records), or their signature files
                would overwrite each other
    summary     one line for the help text and the docs
    server      True when the stage launches an SGLang server (container/runner.py ServerStage)
    switches    store_true server flags it adds to the canonical ones (omitted = off)
    probed      probed signature fields beyond GROUP_FIELDS
    inputs      signature inputs beyond COMMON_INPUTS (and SERVER_INPUTS for server stages)
    depends_on  earlier stages whose output it consumes: their signature fields are part of its
                signature (as ``<stage>_signature``), so a new run of one re-runs this stage
    precompile  the server is run like SGLang's own ``python -m sglang.compile_deep_gemm``: a watchdog
                timeout as long as the stage may take, and that program's environment (container/argv.py)
    """

    __slots__ = ("name", "cache", "records", "summary", "server", "switches", "probed", "inputs", "depends_on",
                 "precompile")

    def __init__(self, name, cache, summary, server=False, switches=(), probed=(), inputs=(), depends_on=(),
                 precompile=False, records=None):
        self.name = name
        self.cache = cache
        self.records = records or cache
        if not self.records:
            raise ValueError("stage %r has no cache and no records directory: name one (records=...)" % name)
        self.summary = summary
        self.server = bool(server)
        self.switches = tuple(switches)
        self.probed = tuple(probed)
        self.inputs = tuple(inputs)
        self.depends_on = tuple(depends_on)
        self.precompile = bool(precompile)

    @property
    def warmup(self):
        """A server stage with metrics on: it serves a request and checks that telemetry saw it."""
        return self.server and METRICS_SWITCH in self.switches

    def signature_inputs(self):
        """Names of the signature fields the stage's runner supplies (besides the probed ones)."""
        out = COMMON_INPUTS + (SERVER_INPUTS if self.server else ()) + self.inputs
        return out + tuple(dependency_field(dep) for dep in self.depends_on)

    def signature_fields(self):
        """Names of every field of the stage's signature.json."""
        return GROUP_FIELDS + self.probed + self.signature_inputs()

    def __repr__(self):
        return "Stage(%r)" % self.name


PRIMING_STAGES = (
    Stage("deep_gemm", cache="deep_gemm", server=True, switches=(), precompile=True,
          probed=("deep_gemm_version", "nvcc_version", "cuda_home") + SERVER_PROBED,
          summary="DeepGEMM JIT compile (metrics and trace off); log in /profiles/deep_gemm/<model>/compile.log "
                  "(append-only); skipped below compute capability 9.0"),
    Stage("moe_tune", cache="moe_configs", server=False,
          inputs=("moe_batch_sizes", "moe_dtype", "moe_tuner") + MOE_SHAPE_INPUTS,
          summary="fused-MoE Triton configs, one tuner run per batch size, written to "
                  "/profiles/moe_configs/configs/triton_<version>/ (SGLANG_MOE_CONFIG_DIR); skipped for "
                  "models without experts"),
    Stage("flashinfer", cache="flashinfer", server=True, switches=("--enable-metrics",),
          probed=("flashinfer_version", "nvcc_version", "cuda_home") + SERVER_PROBED, depends_on=("moe_tune",),
          summary="FlashInfer warm-up on the server port, metrics on; re-runs after a new MoE tuning"),
    Stage("inductor", cache="torchinductor", server=True, switches=("--enable-metrics", "--enable-torch-compile"),
          probed=SERVER_PROBED, depends_on=("moe_tune",),
          summary="TorchInductor warm-up (--enable-torch-compile) on the server port, metrics on; re-runs "
                  "after a new MoE tuning"),
)


def _union(*columns):
    """The values of several rows' columns, each once, in row order."""
    return tuple(dict.fromkeys(value for column in columns for value in column))


# The proof after the priming stages: the serving configuration (the canonical settings, the user's extra
# server args, metrics on: what production runs) is started, driven over the shapes serving meets, and
# every cache under /profiles is compared before and after. Its signature is the union of the priming
# stages' signatures plus the serving args, so it re-runs when anything it proved changed.
SERVE_CHECK = Stage(
    "serve_check", cache="sglang", server=True, switches=("--enable-metrics",),
    probed=_union(*(stage.probed for stage in PRIMING_STAGES)),
    inputs=("serve_max_prompt_tokens",),
    depends_on=tuple(stage.name for stage in PRIMING_STAGES),
    summary="zero-JIT proof: the serving server (metrics on, the extra server args) driven over every captured "
            "decode batch size and prompt lengths up to the chunked-prefill size; fails with jit_at_serve_time "
            "when any cache under /profiles grew or a JIT log line appeared")

STAGES = PRIMING_STAGES + (SERVE_CHECK,)


def check_records(stages):
    """The stages, when no two of them keep their records (signature.json) in one directory; else ValueError."""
    seen = {}
    for stage in stages:
        if stage.records in seen:
            raise ValueError("stages %r and %r both keep their records in %r: their signature files would overwrite "
                             "each other; give one of them records=<a directory of its own>"
                             % (seen[stage.records], stage.name, stage.records))
        seen[stage.records] = stage.name
    return stages


check_records(STAGES)

ORDER = tuple(stage.name for stage in STAGES)
BY_NAME = dict((stage.name, stage) for stage in STAGES)


class UnknownStage(KeyError):
    """A stage name that has no row here."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name
        self.message = "unknown stage %r: the stages are %s" % (name, ", ".join(ORDER))

    def __str__(self):
        return self.message


def get(name):
    """The row of a stage; UnknownStage (a KeyError) names the known stages."""
    try:
        return BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownStage(name)


def dependency_field(stage):
    """Signature field that records another stage's signature: moe_tune -> moe_tune_signature."""
    return stage + "_signature"


def server_stages():
    return tuple(stage.name for stage in STAGES if stage.server)


def warmup_stages():
    return tuple(stage.name for stage in STAGES if stage.warmup)


def priming_stages():
    """The stages that fill caches (every stage but the serve check, which proves them)."""
    return tuple(stage.name for stage in PRIMING_STAGES)
