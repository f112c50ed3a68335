"""scripts/apt_mirror.py: the Debian mirror and suite of the machine's apt sources, for debootstrap."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unit_support.paths import REPO

SCRIPT = Path(REPO) / "scripts" / "apt_mirror.py"
_spec = importlib.util.spec_from_file_location("apt_mirror", SCRIPT)
apt_mirror = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_mirror)

MIRROR = "http://mirror.example.internal/debian"
SECURITY = "http://mirror.example.internal/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def apt_dir(tmp_path, sources_list=None, **parts):
    """An /etc/apt stand-in: sources.list and sources.list.d/<name> files (name "x_list" -> "x.list")."""
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (root / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (root / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return str(root)


def resolve(root, **env):
    return apt_mirror.resolve(root, environ=env)


def run(root, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SGLANG_PREP_DEBIAN_")}
    return subprocess.run([sys.executable, str(SCRIPT), "--apt-dir", root], env=dict(environ, **env),
                          capture_output=True, text=True, timeout=30)


# ------------------------------------------------------------------------------------------ deb822

DEBIAN_SOURCES = f"""\
Types: deb
# a comment inside the stanza
URIs: {MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: {KEYRING}

Types: deb
URIs: {SECURITY}
Suites: bookworm-security
Components: main
Signed-By: {KEYRING}
"""


def test_deb822_sources_as_debian_installs_them(tmp_path):
    assert resolve(apt_dir(tmp_path, debian_sources=DEBIAN_SOURCES)) == (MIRROR, "bookworm")


def test_deb822_security_and_updates_suites_are_skipped(tmp_path):
    text = f"""\
Types: deb
URIs: {SECURITY}
Suites: trixie-security
Components: main

Types: deb
URIs: {MIRROR}
Suites: trixie-updates trixie-backports trixie
Components: main contrib
"""
    assert resolve(apt_dir(tmp_path, debian_sources=text)) == (MIRROR, "trixie")


def test_deb822_fields_are_case_insensitive_and_continue_over_lines(tmp_path):
    text = f"""\
types: deb-src
uris: http://src.example.internal/debian
suites: bookworm
components: main

TYPES: deb deb-src
URIS:
 mirror+file:/etc/apt/mirrors/debian.list
 cdrom:[Debian GNU/Linux 12]/
\t{MIRROR}/
SUITES: bookworm
COMPONENTS: contrib
  main
signed-by: {KEYRING}
"""
    assert resolve(apt_dir(tmp_path, debian_sources=text)) == (MIRROR, "bookworm")


def test_deb822_disabled_stanza_is_skipped(tmp_path):
    text = f"""\
Enabled: no
Types: deb
URIs: http://old.example.internal/debian
Suites: bookworm
Components: main

Types: deb
URIs: {MIRROR}
Suites: bookworm
Components: main
Enabled: yes
"""
    assert resolve(apt_dir(tmp_path, debian_sources=text)) == (MIRROR, "bookworm")


def test_deb822_multiple_uris_the_first_one_wins(tmp_path):
    text = f"""\
Types: deb
URIs: {MIRROR} http://second.example.internal/debian
Suites: bookworm
Components: main
"""
    assert resolve(apt_dir(tmp_path, debian_sources=text)) == (MIRROR, "bookworm")


# ------------------------------------------------------------------------------------------ one-line

@pytest.mark.parametrize("line", [
    f"deb {MIRROR} bookworm main",
    f"deb {MIRROR}/ bookworm main contrib non-free-firmware",
    f"deb [signed-by={KEYRING}] {MIRROR} bookworm main",
    f"deb [arch=amd64 trusted=yes] {MIRROR} bookworm main",
    f"deb [ arch=amd64,arm64 signed-by={KEYRING} ]  {MIRROR}\tbookworm main  # inline comment",
    f"\tdeb\t[arch+=amd64]\t{MIRROR} bookworm non-free main",
])
def test_one_line_entry_with_and_without_options(tmp_path, line):
    assert resolve(apt_dir(tmp_path, line + "\n")) == (MIRROR, "bookworm")


def test_one_line_skips_comments_deb_src_security_updates_backports(tmp_path):
    text = f"""\
# deb http://commented.example.internal/debian bookworm main
#deb http://commented.example.internal/debian bookworm main
deb-src {MIRROR} bookworm main
deb {SECURITY} bookworm-security main
deb http://mirror.example.internal/debian-security bookworm/updates main
deb {MIRROR} bookworm-updates main
deb {MIRROR} bookworm-backports main
deb {MIRROR} bookworm-proposed-updates main
deb {MIRROR} experimental main
deb {MIRROR} bookworm contrib non-free
deb http://flat.example.internal/debian ./
deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb mirror+file:/etc/apt/mirrors/debian.list bookworm main
deb [signed-by=/x.gpg {MIRROR} bookworm main
deb {MIRROR}
deb http://second.example.internal/debian bookworm main
deb {MIRROR} trixie main
"""
    assert resolve(apt_dir(tmp_path, text)) == ("http://second.example.internal/debian", "bookworm")


def test_suite_aliases_count_as_debian_releases(tmp_path):
    assert resolve(apt_dir(tmp_path, "deb http://apt.example.internal/archive stable main\n")) \
        == ("http://apt.example.internal/archive", "stable")


# ------------------------------------------------------------------------------------------ files and order

def test_sources_list_comes_before_sources_list_d_and_parts_in_name_order(tmp_path):
    root = apt_dir(tmp_path, f"deb {MIRROR} bookworm main\n",
                   a_list="deb http://a.example.internal/debian bookworm main\n")
    assert resolve(root) == (MIRROR, "bookworm")
    root = apt_dir(tmp_path / "2",
                   b_list="deb http://b.example.internal/debian bookworm main\n",
                   a_sources="Types: deb\nURIs: http://a.example.internal/debian\nSuites: trixie\nComponents: main\n")
    assert resolve(root) == ("http://a.example.internal/debian", "trixie")


@pytest.mark.parametrize("name", ["debian.sources.disabled-by-farm", "debian.list.save", "debian.list~",
                                  "debian.sources.dpkg-old", "debian.conf"])
def test_other_file_names_in_sources_list_d_are_ignored(tmp_path, name):
    root = apt_dir(tmp_path, zz_list=f"deb {MIRROR} bookworm main\n")
    (Path(root) / "sources.list.d" / name).write_text("deb http://ignored.example.internal/debian bookworm main\n")
    assert resolve(root) == (MIRROR, "bookworm")


def test_non_debian_repositories_are_passed_over(tmp_path):
    root = apt_dir(
        tmp_path,
        # earlier in apt's order, but no sign of Debian (suite, keyring, "debian" in the path) or not main
        aaa_list="deb https://packages.example.internal/apt cloud-sdk main\n"
                 "deb [signed-by=/usr/share/keyrings/tool.gpg] https://tools.example.internal/repos/cli bookworm main\n"
                 "deb https://download.example.internal/linux/debian bookworm stable\n",
        nodesource_sources="Types: deb\nURIs: https://node.example.internal/node_20.x\nSuites: nodistro\n"
                           "Components: main\n",
        zz_sources=f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\nSigned-By: {KEYRING}\n")
    assert resolve(root) == (MIRROR, "bookworm")


def test_a_third_party_repository_for_a_release_is_used_when_nothing_else_is(tmp_path):
    root = apt_dir(tmp_path, "deb https://tools.example.internal/repos/cli bookworm main\n")
    assert resolve(root) == ("https://tools.example.internal/repos/cli", "bookworm")


def test_a_local_debian_repository_with_its_own_suite_name(tmp_path):
    root = apt_dir(tmp_path, "deb [trusted=yes] http://local-repo.example.internal/debian snapshot20250520 main\n")
    assert resolve(root) == ("http://local-repo.example.internal/debian", "snapshot20250520")


def test_network_mirrors_before_file_ones(tmp_path):
    root = apt_dir(tmp_path, f"deb [trusted=yes] file:/srv/debian bookworm main\ndeb {MIRROR} bookworm main\n")
    assert resolve(root) == (MIRROR, "bookworm")
    assert resolve(apt_dir(tmp_path / "2", "deb file:///srv/debian bookworm main\n")) \
        == ("file:///srv/debian", "bookworm")


# ------------------------------------------------------------------------------------------ environment

def test_environment_overrides_both(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEBIAN_SOURCES)
    assert resolve(root, SGLANG_PREP_DEBIAN_MIRROR="http://local-repo.example.internal/debian",
                   SGLANG_PREP_DEBIAN_SUITE="trixie") == ("http://local-repo.example.internal/debian", "trixie")
    # nothing is read when both are given
    assert resolve(str(tmp_path / "missing"), SGLANG_PREP_DEBIAN_MIRROR="file:///srv/debian",
                   SGLANG_PREP_DEBIAN_SUITE="bookworm") == ("file:///srv/debian", "bookworm")


def test_environment_overrides_one_the_other_comes_from_the_sources(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEBIAN_SOURCES)
    assert resolve(root, SGLANG_PREP_DEBIAN_MIRROR="http://other.example.internal/debian") \
        == ("http://other.example.internal/debian", "bookworm")
    assert resolve(root, SGLANG_PREP_DEBIAN_SUITE="trixie") == (MIRROR, "trixie")
    assert resolve(root, SGLANG_PREP_DEBIAN_MIRROR="", SGLANG_PREP_DEBIAN_SUITE="") == (MIRROR, "bookworm")


def test_suite_override_prefers_an_entry_of_that_suite(tmp_path):
    root = apt_dir(tmp_path, f"deb {MIRROR} bookworm main\ndeb http://trixie.example.internal/debian trixie main\n")
    assert resolve(root, SGLANG_PREP_DEBIAN_SUITE="trixie") == ("http://trixie.example.internal/debian", "trixie")


def test_cli_prints_mirror_and_suite_and_honours_the_environment(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEBIAN_SOURCES)
    proc = run(root)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{MIRROR} bookworm\n", "")
    proc = run(root, SGLANG_PREP_DEBIAN_SUITE="trixie")
    assert (proc.returncode, proc.stdout) == (0, f"{MIRROR} trixie\n")


# ------------------------------------------------------------------------------------------ nothing found

def test_nothing_found_is_a_clear_error_naming_where_it_looked(tmp_path):
    root = apt_dir(tmp_path, f"deb-src {MIRROR} bookworm main\n# deb {MIRROR} bookworm main\n",
                   security_sources=f"Types: deb\nURIs: {SECURITY}\nSuites: bookworm-security\nComponents: main\n")
    (Path(root) / "sources.list.d" / "debian.sources.disabled-by-farm").write_text(
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\n")
    proc = run(root)
    assert proc.returncode == 1 and proc.stdout == ""
    for where in ("sources.list", "sources.list.d/*.list", "sources.list.d/*.sources"):
        assert os.path.join(root, where) in proc.stderr
    assert "SGLANG_PREP_DEBIAN_MIRROR" in proc.stderr and "SGLANG_PREP_DEBIAN_SUITE" in proc.stderr
    assert "security.sources:1: %s bookworm-security (suite bookworm-security is not a release)" % SECURITY \
        in proc.stderr


def test_no_apt_directory_at_all(tmp_path):
    with pytest.raises(apt_mirror.NoMirror, match="no Debian mirror found"):
        resolve(str(tmp_path / "missing"))
    with pytest.raises(apt_mirror.NoMirror, match="SGLANG_PREP_DEBIAN_SUITE"):
        resolve(str(tmp_path / "missing"), SGLANG_PREP_DEBIAN_MIRROR=MIRROR)


def test_only_non_debian_repositories_is_an_error_that_lists_them(tmp_path):
    root = apt_dir(tmp_path, "deb http://archive.example.internal/ubuntu jammy main universe\n")
    with pytest.raises(apt_mirror.NoMirror) as err:
        resolve(root)
    assert "http://archive.example.internal/ubuntu jammy (not a Debian archive)" in str(err.value)
