"""Filter sglang.prep.offenders: every host path the host user does not own or cannot write, with its fix."""

from ansible_collections.sglang.prep.plugins.filter.offenders import offenders

USER = "devuser"
UID = 47002


def entry(path, uid=UID, mode="0755", wusr=True, xusr=True, isdir=True, pw_name="devuser", **extra):
    return dict(path=path, uid=uid, mode=mode, wusr=wusr, xusr=xusr, isdir=isdir, pw_name=pw_name, **extra)


def test_paths_the_host_user_owns_and_can_write_are_fine():
    assert offenders([entry("/r/profiles"), entry("/r/profiles/f", isdir=False, xusr=False)], USER, UID) == []


def test_a_foreign_owner_is_named_with_the_chown_that_fixes_it():
    lines = offenders([entry("/r/profiles", uid=0, pw_name="root")], USER, str(UID))
    assert lines == ["/r/profiles: owner root (uid 0), expected devuser (uid 47002); fix: sudo chown -R devuser: /r/profiles"]


def test_an_owned_path_that_is_not_writable_gets_a_chmod():
    assert offenders([entry("/r/telemetry", mode="0555", wusr=False)], USER, UID) == [
        "/r/telemetry: owned by devuser but not writable (mode 0555); fix: chmod u+rwx /r/telemetry"]
    assert offenders([entry("/r/t/f", mode="0600", isdir=False, xusr=False, wusr=False)], USER, UID)[0].endswith("chmod u+rw /r/t/f")


def test_a_link_is_judged_by_its_target_and_fixed_there():
    link = {"path": "/r/profiles", "islnk": True, "lnk_source": "/data/p", "lnk_target": "/data/p",
            "target": entry("/data/p", uid=0, pw_name="root")}
    assert offenders([link], USER, UID) == [
        "/r/profiles (a symlink to /data/p): owner root (uid 0), expected devuser (uid 47002); fix: sudo chown -R devuser: /data/p"]


def test_a_dangling_link_is_named_only_when_it_is_a_host_directory():
    dangling = {"path": "/r/profiles", "islnk": True, "lnk_source": "/data/gone", "lnk_target": "../gone", "target": None}
    assert offenders([dangling], USER, UID, ["/r/profiles"]) == [
        "/r/profiles: a symlink to ../gone, which does not exist; fix: create /data/gone as devuser, or remove the link"]
    assert offenders([dict(dangling, path="/r/profiles/x")], USER, UID, ["/r/profiles"]) == []
