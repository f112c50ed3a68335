"""The metrics textfile in the host's node_exporter textfile directory (prime_metrics_textfile_dir, mounted at
contract.TEXTFILE_MOUNT): written only when mounted, atomically, readable by every user whatever the umask."""

import os
import stat

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import metrics

TEXT = '# HELP sglang_prep_cache_bytes x\n# TYPE sglang_prep_cache_bytes gauge\nsglang_prep_cache_bytes{cache="a"} 1\n'


def test_nothing_is_written_without_the_mount(tmp_path):
    assert metrics.publish_textfile(TEXT, mount=str(tmp_path / "absent")) is None
    assert not (tmp_path / "absent").exists()


def test_the_textfile_is_world_readable_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert metrics.publish_textfile(TEXT, mount=str(tmp_path)) is None
    finally:
        os.umask(old)
    written = tmp_path / contract.METRICS_NAME
    assert written.read_text() == TEXT
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == [contract.METRICS_NAME], "no temporary file is left"


def test_an_unwritable_directory_is_a_warning_naming_the_variable(tmp_path):
    target = tmp_path / "textfile"
    target.mkdir()
    target.chmod(0o555)
    try:
        if os.access(str(target), os.W_OK):  # root writes anyway: make the target a file instead
            target.chmod(0o755)
            os.rmdir(str(target))
            target.mkdir()
            (target / contract.METRICS_NAME).mkdir()
        warning = metrics.publish_textfile(TEXT, mount=str(target))
    finally:
        target.chmod(0o755)
    assert "prime_metrics_textfile_dir" in warning and contract.METRICS_NAME in warning
