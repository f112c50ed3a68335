"""devuser: passwd/group entries for the host UID:GID, refusing root, and running code as devuser."""

import os
import pathlib
import shutil
import tempfile

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import identity
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

UBUNTU_PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash
"""
UBUNTU_GROUP = """root:x:0:
daemon:x:1:
ubuntu:x:1000:
"""


@pytest.fixture
def etc(tmp_path):
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text(UBUNTU_PASSWD)
    group.write_text(UBUNTU_GROUP)
    return passwd, group


def env(uid, gid):
    return {"SGLANG_PREP_UID": str(uid), "SGLANG_PREP_GID": str(gid)}


def test_entries_added_for_host_ids(etc):
    passwd, group = etc
    user = identity.from_env(env(4242, 4343))
    assert identity.ensure_entries(user, str(passwd), str(group), shell="/bin/bash") == {"passwd": "added", "group": "added"}
    assert "devuser:x:4242:4343:sglang.prep devuser:/home/devuser:/bin/bash" in passwd.read_text().splitlines()
    assert "devuser:x:4343:" in group.read_text().splitlines()
    assert passwd.read_text().startswith(UBUNTU_PASSWD)  # nothing else touched


def test_second_start_of_same_container_changes_nothing(etc):
    passwd, group = etc
    user = identity.from_env(env(4242, 4242))
    identity.ensure_entries(user, str(passwd), str(group), shell="/bin/bash")
    before = passwd.read_text(), group.read_text()
    assert identity.ensure_entries(user, str(passwd), str(group), shell="/bin/bash") == {
        "passwd": "unchanged", "group": "unchanged"}
    assert (passwd.read_text(), group.read_text()) == before


def test_id_taken_by_another_name_still_gets_a_devuser_entry(etc):
    """Ubuntu-based SGLang images have ubuntu 1000: docker exec -u devuser must still resolve."""
    passwd, group = etc
    user = identity.from_env(env(1000, 1000))
    identity.ensure_entries(user, str(passwd), str(group), shell="/bin/bash")
    lines = passwd.read_text().splitlines()
    assert "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash" in lines
    assert [line for line in lines if line.startswith("devuser:")] == [
        "devuser:x:1000:1000:sglang.prep devuser:/home/devuser:/bin/bash"]
    assert "devuser:x:1000:" in group.read_text().splitlines()


def test_changed_ids_replace_the_old_devuser_entry(etc):
    passwd, group = etc
    identity.ensure_entries(identity.from_env(env(4242, 4242)), str(passwd), str(group), shell="/bin/bash")
    result = identity.ensure_entries(identity.from_env(env(5000, 5001)), str(passwd), str(group), shell="/bin/bash")
    assert result == {"passwd": "replaced", "group": "replaced"}
    assert [line for line in passwd.read_text().splitlines() if line.startswith("devuser:")] == [
        "devuser:x:5000:5001:sglang.prep devuser:/home/devuser:/bin/bash"]
    assert [line for line in group.read_text().splitlines() if line.startswith("devuser:")] == ["devuser:x:5001:"]


@pytest.mark.parametrize("uid,gid", [(0, 4242), (4242, 0), (0, 0)])
def test_root_ids_are_refused_with_a_reason(uid, gid):
    with pytest.raises(PrepError) as err:
        identity.from_env(env(uid, gid))
    assert err.value.error_type == "permissions_unexpected"
    assert "may not be root" in err.value.message


@pytest.mark.parametrize("values,needle", [({}, "SGLANG_PREP_UID is not set"),
                                           ({"SGLANG_PREP_UID": "4242"}, "SGLANG_PREP_GID is not set"),
                                           ({"SGLANG_PREP_UID": "abc", "SGLANG_PREP_GID": "1"}, "not a numeric id")])
def test_missing_or_bad_ids_say_what_to_pass(values, needle):
    with pytest.raises(PrepError) as err:
        identity.from_env(values)
    assert needle in err.value.message


def test_unwritable_etc_is_an_actionable_error(tmp_path):
    user = identity.from_env(env(4242, 4242))
    with pytest.raises(PrepError) as err:
        identity.ensure_entries(user, str(tmp_path / "missing" / "passwd"), str(tmp_path / "missing" / "group"))
    assert "--user" in err.value.message and "4242" in err.value.message


@pytest.fixture
def world_dir():
    """A directory another uid can reach (pytest's tmp_path is under a 0700 root directory)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="sglang-prep-unit-"))
    os.chmod(str(path), 0o755)  # test setup only (mkdtemp makes it 0700)
    yield path
    shutil.rmtree(str(path), ignore_errors=True)


def current_user():
    return identity.Devuser("devuser", os.getuid(), os.getgid(), "/home/devuser")


def test_run_as_returns_the_child_result_and_environment():
    result = identity.run_as(current_user(), lambda a, b=0: {"sum": a + b, "pid": os.getpid(), "home": os.environ["HOME"]},
                             2, b=3)
    assert result["sum"] == 5
    assert result["pid"] != os.getpid()  # it really ran in a forked process
    assert result["home"] == "/home/devuser"


def test_run_as_reraises_prep_errors_with_details():
    def fail():
        raise PrepError("permissions_unexpected", "nope", path="/profiles")

    with pytest.raises(PrepError) as err:
        identity.run_as(current_user(), fail)
    assert (err.value.error_type, err.value.message, err.value.details) == ("permissions_unexpected", "nope",
                                                                            {"path": "/profiles"})


def test_run_as_turns_crashes_into_internal_errors():
    with pytest.raises(PrepError) as err:
        identity.run_as(current_user(), lambda: 1 / 0)
    assert err.value.error_type == "internal_error" and "ZeroDivisionError" in err.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root (the container init is root)")
def test_run_as_really_drops_to_devuser(world_dir):
    target = world_dir / "owned"
    target.mkdir()
    os.chown(target, 4242, 4243)  # test setup only: the operator's job on a real host
    user = identity.Devuser("devuser", 4242, 4243, "/home/devuser")
    ids = identity.run_as(user, lambda: (os.getuid(), os.geteuid(), os.getgid(), os.getgroups()))
    assert ids == [4242, 4242, 4243, []]
    identity.run_as(user, lambda: open(str(target / "f"), "w").close())
    st = os.stat(str(target / "f"))
    assert (st.st_uid, st.st_gid) == (4242, 4243)
