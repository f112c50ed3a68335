"""Cache bundles hold nothing that grows with the bundle (container/bundle.py, format 3).

What a user relies on: packing and installing the caches of a model with many files (DeepGEMM and Triton caches
reach hundreds of thousands) needs the same memory as for a few thousand, so a bundle never takes the memory the
server and the compile need. Measured with tracemalloc (the Python objects pack and install hold at their peak) at
N and 5N small files: the peak may not grow with the files. (The on-disk index's sqlite page cache is outside
tracemalloc's view; it is bounded by the index's cache_size, and scripts/bench_registry.py measures the RSS.)
"""

import hashlib
import os
import tracemalloc
import zlib

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle, signature
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout

MODEL = "/models/tiny-moe"
STAGE = "deep_gemm"
FIELDS = {"device_name": "NVIDIA H200", "driver_version": "570.148.08", "model_slug": "tiny-moe", "stage": STAGE}
SMALL = 1000
PER_FILE = 200  # bytes a file the peak may grow by (a list of the files takes about 600 to 750)
GROWTH = 1.25  # the bench's target for 5x the files (scripts/bench_registry.py)


def cache_of(root, files):
    """``files`` small files of the model's DeepGEMM subtree (4 KiB of random bytes each, like cubins: even the small
    bundle is larger than the buffers pack and install keep), 16 to a directory, and its signature."""
    base = Layout(profiles_root=root).fs(contract.stage_model_dir(STAGE, MODEL))
    for i in range(files):
        folder = os.path.join(base, "%03x" % (i // 16))
        if i % 16 == 0:
            os.makedirs(folder)
        with open(os.path.join(folder, "k%06d.cubin" % i), "wb") as handle:
            handle.write(os.urandom(4096))
    signature.write(os.path.join(base, "signature.json"), STAGE, FIELDS, "run", "2026-12-07T00:00:00Z", 1.0)


def peak(work):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def pack_and_install_peaks(tmp_path, files):
    source = str(tmp_path / ("src-%d" % files) / "profiles")
    target = str(tmp_path / ("dst-%d" % files) / "profiles")
    cache_of(source, files)
    os.makedirs(target)
    made = {}
    pack_peak = peak(lambda: made.update(bundle.pack(source, MODEL, [STAGE], str(tmp_path / ("store-%d" % files)))))
    install_peak = peak(lambda: made.update(installed=bundle.install(made["path"], target, MODEL, {STAGE: FIELDS},
                                                                     headroom_mb=0)))
    assert made["installed"]["file_count"] == files
    return pack_peak, install_peak


class InlineWriter(bundle._GzipWriter):
    """Pack's gzip writer with its compressor in the caller's thread: the chunks waiting for the compressor thread
    (at most QUEUED of 1 MiB, and their compressed copies) depend on how the threads are scheduled, not on the
    bundle, and would blur the peaks this test compares. Everything else pack does is unchanged."""

    def __init__(self, raw):  # pylint: disable=super-init-not-called
        self.raw = raw
        self.digest = hashlib.sha256()
        self.engine = zlib.compressobj(1, zlib.DEFLATED, 31)
        self.failed = self.thread = None
        self.pending = []
        self.pending_bytes = self.offset = 0

    def _send(self, chunk):
        self._out(self.engine.compress(chunk))

    def _out(self, out):
        self.digest.update(out)
        self.raw.write(out)

    def close(self):
        if self.engine is not None:
            if self.pending:
                self._send(b"".join(self.pending))
                self.pending, self.pending_bytes = [], 0
            self._out(self.engine.flush())
            self.engine = None


def test_pack_and_install_peak_memory_does_not_grow_with_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "_GzipWriter", InlineWriter)
    small = pack_and_install_peaks(tmp_path, SMALL)
    large = pack_and_install_peaks(tmp_path, 5 * SMALL)
    for side, low, high in zip(("pack", "install"), small, large):
        growth = (high - low) / (4.0 * SMALL)
        # flat: 5x the files may take at most GROWTH x the peak, and a few bytes more a file
        assert high <= low * GROWTH and growth <= PER_FILE, (
            "%s: peak %d bytes at %d files, %d bytes at %d files (x%.2f, at most x%.2f; %.0f bytes a file, at most %d)"
            % (side, low, SMALL, high, 5 * SMALL, high / float(low), GROWTH, growth, PER_FILE))
