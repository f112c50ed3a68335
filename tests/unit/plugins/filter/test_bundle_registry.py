"""bundle_registry filters: what the registry gave a host, as its prime_report says it."""

from ansible_collections.sglang.prep.plugins.filter.bundle_registry import FilterModule

F = FilterModule().filters()
PULLED = {"status": "pulled", "tag": "m-gab", "digest": "sha256:" + "1" * 64, "ref": "r/x@sha256:" + "1" * 64,
          "signer": "builders", "source_host": "gpu-01", "builder_compile_s": 3600.5, "archive_bytes": 10, "pull_s": 1.0}


def test_installed_from_the_registry():
    out = F["registry_outcome"](PULLED, {"status": "installed", "stages": ["deep_gemm"], "install_s": 2.0}, "r/x")
    assert out["outcome"] == "installed" and out["source"] == "registry" and out["installed"] == ["deep_gemm"]
    assert out["digest"] == PULLED["digest"] and out["builder_compile_s"] == 3600.5 and out["error_type"] is None


def test_absent_then_primed_itself():
    out = F["registry_outcome"]({"status": "absent", "tag": "m-gab", "changed": False}, {"skipped": True}, "r/x")
    assert out["outcome"] == "absent" and out["installed"] == [] and out["error_type"] is None


def test_unreachable_registry_is_unavailable_with_its_error():
    out = F["registry_outcome"]({"failed": True, "error_type": "registry_unavailable", "msg": "no answer"}, {}, "r/x")
    assert out["outcome"] == "unavailable" and out["error_type"] == "registry_unavailable" and out["message"] == "no answer"


def test_a_refused_bundle_means_the_host_primed_itself():
    out = F["registry_outcome"](PULLED, {"error_type": "bundle_mismatch", "msg": "differs"}, "r/x")
    assert out["outcome"] == "refused" and out["error_type"] == "bundle_mismatch" and out["installed"] == []


def test_published():
    out = F["registry_published"]({"digest": "sha256:" + "2" * 64, "tag": "m-gab", "signed": True, "push_s": 1.2},
                                  {"digest": "3" * 64})
    assert out == {"digest": "sha256:" + "2" * 64, "tag": "m-gab", "signed": True, "bundle_sha256": "3" * 64, "push_s": 1.2,
                   "error_type": None, "message": None}
    failed = F["registry_published"]({"error_type": "registry_auth", "msg": "denied"}, {"digest": "3" * 64})
    assert failed["error_type"] == "registry_auth" and failed["message"] == "denied" and failed["digest"] is None
