#!/usr/bin/env python3
"""Bundle and registry benchmarks (make bench runs them through scripts/bench.py; run as root for the registry parts).

    scripts/bench_registry.py throughput [--files N] [--gib G]
        pack and install of a synthetic cache (default 50,000 files, 2 GiB) with the collection's bundle code, against
        `tar -c | gzip -1` and `tar -x` of the same tree on the same disk: the ratios (target: within 1.5x), and the
        peak memory (RSS) of pack and install at two sizes, a fifth of it and the whole (target: flat in the bundle
        size, the peak at 5x the files at most 1.25x; the growth is given in bytes a file too), each with PASS or MISS.
    scripts/bench_registry.py round-trip [--gib G]
        a bundle of G GiB (default 1) pushed to the test registry (TLS, htpasswd auth) and fetched back, through the
        Docker engine (sglang_bundle_publish / sglang_bundle_pull's code).
    scripts/bench_registry.py join
        a new host joining a primed fleet: it compiles itself, against it installing its group's bundle from the
        registry (the stand-in compile cost raised as the fan-out bench does); the ratio of the wall times.

Each prints one JSON line. stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))
sys.path.insert(0, os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "plugins", "module_utils"))

MODEL = "/models/bench-model"
STAGE = "deep_gemm"
FIELDS = {"stage": STAGE, "model_slug": "bench-model", "gpu_name": "NVIDIA H100 80GB HBM3", "driver_version": "570.148.08"}


def log(message):
    print("bench_registry: " + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pack / install throughput

def make_tree(profiles, files, total_bytes):
    """A synthetic cache: ``files`` files, ``total_bytes`` in all, half of each file random (incompressible, like
    cubins) and half repeated text (compressible, like generated Python), in nested directories."""
    from sglang_prep import contract
    from sglang_prep.container import signature
    key = contract.model_key(MODEL)
    base = os.path.join(profiles, "deep_gemm", key)
    size = max(1, total_bytes // files)
    filler = (b"def kernel(x):\n    return x * 2\n" * (size // 32 + 1))[:size // 2]
    for i in range(files):
        folder = os.path.join(base, "%02x" % (i % 256), "%02x" % (i // 256 % 256))
        if i < 65536:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "k%06d.cubin" % i), "wb") as handle:
            handle.write(os.urandom(size - len(filler)))
            handle.write(filler)
    signature.write(os.path.join(base, "signature.json"), STAGE, FIELDS, "bench", "2026-12-07T00:00:00Z", 1.0)
    return base


def child(mode, profiles, out):
    """One pack or install in this process; prints seconds and the peak RSS (KiB)."""
    from sglang_prep.container import bundle
    started = time.monotonic()
    if mode == "pack":
        manifest = bundle.pack(profiles, MODEL, [STAGE], out, source_host="bench")
        extra = {"archive_bytes": manifest["archive_bytes"], "path": manifest["path"]}
    else:
        os.makedirs(profiles, exist_ok=True)
        result = bundle.install(out, profiles, MODEL, {STAGE: FIELDS}, run_id="bench", headroom_mb=0)
        extra = {"file_count": result["file_count"]}
    print(json.dumps(dict(extra, seconds=round(time.monotonic() - started, 2),
                          peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))


def run_child(mode, profiles, out):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "_child", mode, profiles, out],
                          stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_shell(command):
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.monotonic() - started


def drop_caches():
    """Writes the dirty pages out, so each side starts from the same state (reads stay cached for both)."""
    subprocess.run(["sync"], check=False)


def throughput_once(work, files, total_bytes):
    src = os.path.join(work, "src")
    make_tree(src, files, total_bytes)
    drop_caches()
    pack = run_child("pack", src, os.path.join(work, "bundles"))
    drop_caches()
    tar_gz = os.path.join(work, "tree.tar.gz")
    tar_c = timed_shell("tar -C %s -cf - deep_gemm | gzip -1 > %s" % (src, tar_gz))
    drop_caches()
    install = run_child("install", os.path.join(work, "dst"), pack["path"])
    drop_caches()
    os.makedirs(os.path.join(work, "untar"))
    tar_x = timed_shell("gzip -dc %s | tar -C %s -xf -" % (tar_gz, os.path.join(work, "untar")))
    return {"files": files, "bytes": total_bytes, "pack_s": pack["seconds"], "tar_gzip_s": round(tar_c, 2),
            "pack_ratio": round(pack["seconds"] / tar_c, 2), "install_s": install["seconds"], "tar_x_s": round(tar_x, 2),
            "install_ratio": round(install["seconds"] / tar_x, 2), "pack_peak_mib": round(pack["peak_rss_kib"] / 1024, 1),
            "install_peak_mib": round(install["peak_rss_kib"] / 1024, 1), "archive_bytes": pack["archive_bytes"],
            "tar_gz_bytes": os.path.getsize(tar_gz)}


TARGET_RATIO = 1.5
TARGET_MEMORY_GROWTH = 1.25


def measure_throughput(files=50000, gib=2.0, workdir=None):
    """The full size, and a fifth of it for the memory comparison; the verdicts against the targets."""
    out = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    for label, n, size in (("small", files // 5, int(gib * (1 << 30)) // 5), ("full", files, int(gib * (1 << 30)))):
        work = tempfile.mkdtemp(prefix="sglang-prep-bench-bundle-", dir=workdir)
        try:
            log("bundle throughput, %d files, %.2f GiB ..." % (n, size / float(1 << 30)))
            out[label] = throughput_once(work, n, size)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    small, full = out["small"], out["full"]
    out["memory_growth"] = dict((side, round(full[side + "_peak_mib"] / small[side + "_peak_mib"], 2))
                                for side in ("pack", "install"))
    out["memory_bytes_per_file"] = dict(
        (side, int((full[side + "_peak_mib"] - small[side + "_peak_mib"]) * 1048576 / (full["files"] - small["files"])))
        for side in ("pack", "install"))
    ok = lambda good: "PASS" if good else "MISS"  # noqa: E731
    out["target"] = {"ratio_max": TARGET_RATIO, "memory_growth_max": TARGET_MEMORY_GROWTH,
                     "pack": ok(full["pack_ratio"] <= TARGET_RATIO), "install": ok(full["install_ratio"] <= TARGET_RATIO),
                     "memory_flat": ok(max(out["memory_growth"].values()) <= TARGET_MEMORY_GROWTH)}
    return out


# ---------------------------------------------------------------- the registry

def measure_round_trip(gib=1.0):
    import oci_registry
    import _oci_bundle as ob
    facts = oci_registry.up()
    work = tempfile.mkdtemp(prefix="sglang-prep-bench-oci-")
    try:
        size = int(gib * (1 << 30))
        digest = hashlib.sha256()
        tmp = os.path.join(work, "bundle")
        with open(tmp, "wb") as handle:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 22))
                digest.update(chunk)
                handle.write(chunk)
                left -= len(chunk)
        path = os.path.join(work, digest.hexdigest() + ".tar.gz")
        os.rename(tmp, path)
        manifest = {"format": ob.BUNDLE_FORMAT, "model": MODEL, "model_slug": "bench-model", "group_key": os.urandom(8).hex(), "stages": {},
                    "collection_version": "bench", "source_host": "bench", "created_at": "2026-12-07T00:00:00Z"}
        with ob.Engine("docker", facts["repository"], username=facts["username"], password=facts["password"]) as engine:
            started = time.monotonic()
            pushed = ob.publish(engine, path, manifest)
            push_s = time.monotonic() - started
        with ob.Engine("docker", facts["repository"], username=facts["username"], password=facts["password"]) as engine:
            started = time.monotonic()
            got = ob.fetch(engine, "bench-model", manifest["group_key"], os.path.join(work, "fetched"))
            pull_s = time.monotonic() - started
        assert got["sha256"] == digest.hexdigest()
        return {"bytes": size, "push_s": round(push_s, 2), "pull_s": round(pull_s, 2),
                "round_trip_s": round(push_s + pull_s, 2), "push_mib_s": round(size / 1048576.0 / push_s, 1),
                "pull_mib_s": round(size / 1048576.0 / pull_s, 1), "digest": pushed["digest"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        oci_registry.down()


def measure_join():
    """fleet1 and fleet2 share a group. fleet2 compiles itself (timed); fleet1 primes and publishes; fleet2, fresh
    again, joins from the registry with fleet1's container stopped (timed)."""
    import bench_fleet
    import fleet_hosts
    import oci_registry
    if os.geteuid() != 0:
        raise SystemExit("bench_registry: run as root: the join bench creates local users, an sshd and a registry")
    facts = oci_registry.up()
    try:
        with fleet_hosts.session("the registry bench"):
            status = fleet_hosts.up(count=2, clean=True, model_dir=bench_fleet.MODEL_DIR, image=fleet_hosts.pinned_image())
            hosts = dict((h["name"], h) for h in status["hosts"])
            try:
                with tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
                    same = bench_fleet.one_group_inventory(os.path.join(report_dir, "one-group.yml"), status["hosts"])
                    values = os.path.join(report_dir, "registry.json")
                    with open(values, "w") as handle:
                        json.dump({"prime_bundle_transfer": "registry", "prime_bundle_registry": facts["repository"],
                                   "prime_bundle_registry_username": facts["username"],
                                   "prime_bundle_registry_password": facts["password"]}, handle)
                    os.chmod(values, 0o600)
                    log("fleet2 compiles itself ...")
                    alone = bench_fleet.prime(status["inventory"], report_dir, ["-i", same, "--limit", "fleet2"])
                    log("fleet1 primes and publishes ...")
                    bench_fleet.prime(status["inventory"], report_dir, ["-i", same, "--limit", "fleet1", "-e", "@" + values])
                    subprocess.run(["docker", "stop", "--time", "1", hosts["fleet1"]["container"]], check=False,
                                   stdout=subprocess.DEVNULL)
                    bench_fleet.fresh([hosts["fleet2"]])
                    log("fleet2, fresh, joins from the registry ...")
                    joined = bench_fleet.prime(status["inventory"], report_dir,
                                               ["-i", same, "--limit", "fleet2", "-e", "@" + values])
                    with open(os.path.join(report_dir, "fleet-report-latest.json")) as handle:
                        row = [r for r in json.load(handle)["hosts"] if r["host"] == "fleet2"][0]
            finally:
                fleet_hosts.down(count=2)
    finally:
        oci_registry.down()
    return {"compiles_itself_s": round(alone, 1), "from_registry_s": round(joined, 1), "ratio": round(joined / alone, 2),
            "outcome": (row.get("registry") or {}).get("outcome"), "zero_jit": row.get("zero_jit"),
            "builder_compile_s": (row.get("registry") or {}).get("builder_compile_s"), "compile_cost": bench_fleet.FANOUT_COST}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        child(*argv[1:])
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["throughput", "round-trip", "join"])
    parser.add_argument("--files", type=int, default=50000)
    parser.add_argument("--gib", type=float)
    args = parser.parse_args(argv)
    if args.what == "throughput":
        result = measure_throughput(args.files, args.gib or 2.0)
    elif args.what == "round-trip":
        result = measure_round_trip(args.gib or 1.0)
    else:
        result = measure_join()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
