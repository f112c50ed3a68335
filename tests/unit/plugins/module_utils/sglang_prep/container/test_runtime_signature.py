"""Signatures: field-level re-prime reasons, the hardware group, nulls with warnings, and the probe parsers."""

import json
import os
import stat
import sys
import textwrap

from unit_support.paths import REPO

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import probe, signature

H100 = {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "sm_90", "cuda": "12.8",
        "driver_version": "570.148.08", "torch_version": "2.8.0", "triton_version": "3.4.0",
        "sglang_version": "0.5.23", "sglang_commit": None}


class FakeProbe(object):
    def __init__(self, facts, why=None):
        self.facts = facts
        self.why_missing = why or {}

    def get(self, field):
        return self.facts.get(field)

    def warning_for(self, field):
        return probe.Probe.warning_for(self, field)


def test_compare_names_each_changed_field_with_old_and_new():
    old = dict(H100, tp=1, model_slug="M")
    new = dict(H100, tp=2, model_slug="M", driver_version="575.1")
    assert signature.compare(old, new) == [
        {"field": "driver_version", "old": "570.148.08", "new": "575.1"},
        {"field": "tp", "old": 1, "new": 2},
    ]


def test_compare_counts_a_field_that_appeared_or_vanished():
    assert signature.compare({"a": None}, {}) == [{"field": "a", "old": None, "new": None}]
    assert signature.compare({}, {"b": 1}) == [{"field": "b", "old": None, "new": 1}]
    assert signature.compare(dict(H100), dict(H100)) == []


def test_group_depends_on_hardware_and_toolchain_only():
    base = signature.group(dict(H100, tp=1, model_slug="A"))
    assert signature.group(dict(H100, tp=8, model_slug="B", settings={"x": 1})) == base
    assert signature.group(dict(H100, driver_version="575.1")) != base
    assert len(base) == 12


def test_build_records_null_with_a_warning_never_a_guess():
    facts = dict(H100, torch_version=None, deep_gemm_version=None, nvcc_version="12.8.93", cuda_home="/usr/local/cuda")
    fields, warnings = signature.build("deep_gemm", FakeProbe(facts, {"torch_version": "torch is not importable"}),
                                       {"tp": 1})
    assert fields["torch_version"] is None and fields["deep_gemm_version"] is None
    assert fields["nvcc_version"] == "12.8.93" and fields["tp"] == 1
    assert any("torch_version" in w and "torch is not importable" in w for w in warnings)
    assert any("deep_gemm_version" in w for w in warnings)


def test_stage_specific_probed_fields():
    assert "flashinfer_version" in signature.probed_fields("flashinfer")
    assert "flashinfer_version" not in signature.probed_fields("deep_gemm")
    assert "deep_gemm_version" in signature.probed_fields("deep_gemm")
    for stage in ("deep_gemm", "moe_tune", "flashinfer", "inductor"):
        assert set(signature.GROUP_FIELDS) <= set(signature.probed_fields(stage))


def test_read_write_roundtrip_and_problems(tmp_path):
    path = str(tmp_path / "signature.json")
    fields, problem = signature.read(path)
    assert fields is None and "no signature" in problem
    signature.write(path, "deep_gemm", dict(H100), "run-1", "2026-01-01T00:00:00.000Z")
    fields, problem = signature.read(path)
    assert fields == H100 and problem is None
    assert json.load(open(path))["signature_group"] == signature.group(H100)
    with open(path, "w") as handle:
        handle.write("{not json")
    fields, problem = signature.read(path)
    assert fields is None and "unreadable" in problem


def test_compute_capability_tags():
    assert probe.compute_capability_tag("9.0") == "sm_90"
    assert probe.compute_capability_tag("10.0") == "sm_100"
    assert probe.compute_capability_tag("[N/A]") is None
    assert probe.compute_capability_major("sm_90") == 9
    assert probe.compute_capability_major("sm_100") == 10
    assert probe.compute_capability_major("sm_80") == 8


def _script(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_probe_reads_the_real_tool_outputs(tmp_path):
    """nvidia-smi and nvcc as the probe sees them (scripts printing the real formats)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "nvidia-smi", """\
        if [ "$1" != "" ]; then echo "NVIDIA H200, 9.0, 570.148.08, 143771"; echo "NVIDIA H200, 9.0, 570.148.08, 143771"
        else echo "| NVIDIA-SMI 570.148.08   Driver Version: 570.148.08   CUDA Version: 12.8     |"; fi
        """)
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    _script(cuda / "bin" / "nvcc", """\
        echo "nvcc: NVIDIA (R) Cuda compiler driver"
        echo "Cuda compilation tools, release 12.8, V12.8.93"
        """)
    env = {"PATH": str(bindir) + ":/usr/bin:/bin", "CUDA_HOME": str(cuda)}
    found = probe.Probe(sys.executable, env)
    assert found.get("device_name") == "NVIDIA H200"
    assert found.get("compute_capability") == "sm_90"
    assert found.get("gpu_count") == 2 and found.get("gpu_memory_mib") == 143771
    assert found.get("cuda") == "12.8" and found.get("driver_version") == "570.148.08"
    assert found.get("nvcc_version") == "12.8.93" and found.get("cuda_home") == str(cuda)


def test_probe_without_gpu_tools_says_why(tmp_path):
    found = probe.Probe(sys.executable, {"PATH": str(tmp_path), "CUDA_HOME": str(tmp_path / "no-cuda")})
    assert found.get("device_name") is None
    assert "nvidia-smi is not on PATH" in found.warning_for("device_name")
    assert "nvcc" in found.warning_for("nvcc_version")


def test_probe_reads_versions_from_the_servers_python(tmp_path):
    """Package versions come from the python that runs the servers: here the repo's stand-ins."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.path.join(REPO, "tests", "standins", "python")}
    found = probe.Probe(sys.executable, env)
    assert found.get("triton_version") == "3.4.0"
    assert found.get("sglang_version") == "0.5.23"
    assert found.get("sglang_dir").endswith(os.path.join("standins", "python", "sglang"))


def test_the_record_keeps_how_long_the_priming_took(tmp_path):
    path = str(tmp_path / "signature.json")
    signature.write(path, "moe_tune", dict(H100), "run-1", "2026-01-01T00:00:00.000Z", 12.5)
    data, problem = signature.read_record(path)
    assert problem is None and data["duration_s"] == 12.5 and data["fields"] == H100
    assert signature.read(path) == (H100, None)


def test_unknown_stage_is_bad_input():
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
    try:
        signature.build("nope", FakeProbe(H100), {})
    except PrepError as exc:
        assert exc.error_type == "bad_input" and "unknown stage 'nope'" in exc.message
    else:
        raise AssertionError("an unknown stage must be bad_input")


def test_error_types_include_the_new_ones():
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
    for name in ("signature_drift", "bad_input"):
        assert name in contract.ERROR_TYPES
        assert PrepError(name, "x").error_type == name


# sglang 0.5.23's own sglang/_version.py (vcs-versioning), with a commit id filled in as a git build has it.
REAL_VERSION_FILE = """\
# file generated by vcs-versioning
# don't change, don't track in version control
from __future__ import annotations

__all__ = ["__version__", "__version_tuple__", "version", "version_tuple", "__commit_id__", "commit_id"]

version: str
__version__: str
commit_id: str | None
__commit_id__: str | None

__version__ = version = '0.5.23'
__version_tuple__ = version_tuple = (0, 5, 23)

__commit_id__ = commit_id = 'g1a2b3c4d'
"""


def test_probe_reads_sglangs_real_version_file(tmp_path):
    """No package metadata (a source checkout on PYTHONPATH): version and commit come from _version.py."""
    pkg = tmp_path / "sglang"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_version.py").write_text(REAL_VERSION_FILE)
    found = probe.Probe(sys.executable, {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)})
    assert found.get("sglang_version") == "0.5.23"
    assert found.get("sglang_commit") == "g1a2b3c4d"
