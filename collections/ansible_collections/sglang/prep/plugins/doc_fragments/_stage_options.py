# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations


class ModuleDocFragment(object):

    # The settings every module that runs the runtime in the prime container shares (sglang_stage, sglang_prime,
    # sglang_cache_bundle): one home for their wording, as _docker_exec.stage_options_spec() is for their spec.
    # The prime role passes them once, through module_defaults (its vars/main.yml __prime_stage_settings).
    DOCUMENTATION = r"""
options:
  container:
    description:
      - Name or ID of the running prime container.
      - If it is not running the task fails with C(error_type=container_not_running) and the last lines of C(docker logs).
    type: str
    required: true
  model:
    description:
      - Model path inside the container, under C(/models) (the host's C(<host root>/models)).
      - A path elsewhere fails with C(error_type=model_not_found) before the container is called.
    type: str
    required: true
  tp:
    description:
      - Tensor-parallel size the stage servers (and the MoE tuner) run with. Part of every stage signature.
    type: int
    default: 1
  port:
    description:
      - Port of the short-lived stage server inside the container. The policy is strict; a busy port
        fails the stage with C(error_type=port_busy), there is no fallback port.
    type: int
    default: 30000
  lock_timeout:
    description:
      - Seconds to wait for a stage lock held by a concurrent run before failing with
        C(error_type=lock_timeout). Unset means the runtime default.
    type: float
  ready_timeout:
    description:
      - Seconds to wait for a stage server to become ready before failing with
        C(error_type=readiness_timeout). Unset means the runtime default.
    type: float
  disk_headroom_mb:
    description:
      - Free space (MiB) that must remain under C(/profiles) before a stage starts (after a bundle is unpacked),
        else C(error_type=insufficient_disk). Unset means the runtime default.
    type: int
  moe_batch_sizes:
    description:
      - Batch sizes the fused-MoE tuner tunes, one per tuner run (part of the V(moe_tune) signature).
        Unset means the runtime default.
    type: list
    elements: int
  moe_dtype:
    description:
      - The MoE tuner's C(--dtype) (for example V(auto) or V(fp8_w8a8)), part of the V(moe_tune) signature.
      - V(auto) (the runtime default) follows the checkpoint's C(quantization_config) (and C(hf_quant_config.json)),
        so the tuner writes the file name SGLang looks up; another value must agree with it, else C(bad_input).
    type: str
  extra_server_args:
    description:
      - Additional SGLang server arguments, one list item per argument (for example C(--attention-backend=flashinfer));
        part of the server stages' signatures.
      - Flags the priming policy sets itself (model, port, TP, memory, KV dtype, CUDA graph, metrics), any abbreviation of
        one (SGLang's parser accepts unambiguous prefixes), C(--config) and C(--cuda-graph-config) fail with C(bad_input)
        before the container is called.
      - The value of a secret option (C(--api-key) and the like) is masked in every result, and such arguments reach the
        runtime through the environment of C(docker exec), never its command line.
    type: list
    elements: str
    default: []
  serve_max_prompt_tokens:
    description:
      - The longest prompt the V(serve_check) stage sends. Unset means the server's chunked-prefill size.
      - A longer value proves longer contexts (the prompt is sent in chunks); it is part of the check's signature.
    type: int
  require_pinned_stack:
    description:
      - Compare the container's sglang, torch, triton, flashinfer and deep_gemm versions with the ones the priming
        tables were checked against (SGLang 0.5.23 and its pins).
      - V(false) names each difference in the warnings; V(true) refuses with C(error_type=stack_unpinned) before any
        stage runs.
    type: bool
    default: false
  env:
    description:
      - Extra environment variables for the runtime process (string values). Only their names are on the command line
        (C(docker exec -e KEY)); the values reach C(docker exec) through its own environment, so they are in no
        process list, and the module's result (C(cmd), C(invocation), also an async job's result file) shows
        C(VALUE_NOT_RECORDED) in their place.
      - Secrets still belong in the container's env file (the prime role's C(prime_env_file)); the stage processes
        and their logs see these values.
    type: dict
    default: {}
  user:
    description:
      - User the runtime runs as inside the container. Every file it writes to the bind mounts is authored by this
        user, which the container init maps to the host user's UID and GID.
    type: str
    default: devuser
  pointer:
    description:
      - Container path of the run pointer, if not the default C(/telemetry/container_run_meta.env).
    type: str
"""

    # What every module that runs the runtime's stages returns besides its own keys (sglang_stage, sglang_prime), in
    # their RETURN: extends_documentation_fragment: [sglang.prep._stage_options].
    RETURN = r"""
log_tail:
  description: The last log lines of the failed stage, or the runtime's stderr when it gave no result.
  returned: on failure
  type: list
  elements: str
  sample: ["RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."]
cmd:
  description: The command that was run, as a list (secret values masked).
  returned: when the command was run
  type: list
  elements: str
  sample: ["/usr/bin/docker", "exec", "-u", "devuser", "sglang-prep", "python3", "-m", "sglang_prep", "stage", "deep_gemm"]
"""
