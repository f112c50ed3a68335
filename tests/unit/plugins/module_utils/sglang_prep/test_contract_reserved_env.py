"""Every container variable the role, the image and the runtime set themselves is reserved: prime_extra_env and
prime_stage_env may not set it (the role refuses it with bad_input before anything changes)."""

import os
import re

from unit_support.paths import COLLECTION

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv, identity


def test_what_every_stage_server_gets_from_the_runtime_is_reserved():
    for stage in registry.ORDER:
        own = set(argv.server_env({}, stage)) - set(argv.PRECOMPILE_ENV)
        assert own <= set(contract.RESERVED_ENV), (stage, sorted(own - set(contract.RESERVED_ENV)))


def test_devusers_identity_variables_are_reserved():
    user = identity.Devuser(name=contract.DEVUSER, uid=1234, gid=1234, home=contract.DEVUSER_HOME)
    assert set(identity.child_env(user, {})) <= set(contract.RESERVED_ENV)


def test_what_the_image_sets_is_reserved():
    with open(os.path.join(COLLECTION, "images", "Dockerfile"), encoding="utf-8") as handle:
        names = set(re.findall(r"^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=", handle.read(), re.M))
    assert names and names <= set(contract.RESERVED_ENV), names


def test_what_the_role_passes_to_the_container_is_reserved():
    """The container's environment is filter sglang.prep.container_env's (filter sglang.prep.container_spec puts it in the
    spec the role passes to the container)."""
    from ansible_collections.sglang.prep.plugins.filter.container_spec import container_spec

    env = container_spec({"dirs": dict((name, "/h/" + name) for name in contract.ENV_HOST_ROOTS), "git_revision": "abc",
                          "services": [], "ports": {}, "extra_env": {}})["spec"]["env"]
    assert set(env) <= set(contract.RESERVED_ENV), sorted(set(env) - set(contract.RESERVED_ENV))
    assert set(contract.ENV_HOST_ROOTS.values()) <= set(contract.RESERVED_ENV)
