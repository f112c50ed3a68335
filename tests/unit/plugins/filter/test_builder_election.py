"""Filter sglang.prep.builder_election: the fan-out groups of a play, one builder each."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.sglang.prep.plugins.filter.builder_election import builder_election


def state(group, to_run=()):
    return {"bundle_group": group, "bundle_to_run": list(to_run)}


def test_the_first_host_of_a_group_builds_and_the_others_receive():
    election = builder_election(["a", "b", "c"], [state("g1", ["deep_gemm"]), state("g1", ["deep_gemm"]), state("g1")])
    assert election["groups"] == {"g1": {"builder": "a", "members": ["a", "b", "c"], "receivers": ["b", "c"], "wanted": True}}
    assert [election["hosts"][h]["role"] for h in "abc"] == ["builder", "receiver", "receiver"]
    assert election["hosts"]["b"] == {"group": "g1", "members": ["a", "b", "c"], "builder": "a", "wanted": True, "role": "receiver"}


def test_prime_builder_chooses_the_builder_as_a_bool_or_a_string():
    election = builder_election(["a", "b", "c"], [state("g1"), state("g1"), state("g1")], [False, "true", True])
    assert election["groups"]["g1"]["builder"] == "b"  # the first host asking for it, in play order
    assert election["hosts"]["a"]["role"] == "receiver" and election["hosts"]["b"]["role"] == "builder"


def test_a_group_of_one_and_a_host_without_a_plan_are_alone():
    election = builder_election(["a", "b", "c"], [state("g1"), state("g2"), {}])
    assert election["hosts"]["a"]["role"] == "alone" and election["hosts"]["b"]["role"] == "alone"
    assert election["hosts"]["c"] == {"group": None, "members": [], "builder": None, "wanted": False, "role": "alone"}
    assert election["ungrouped"] == ["c"] and sorted(election["groups"]) == ["g1", "g2"]


def test_a_primed_group_moves_nothing():
    """The builder packs only when a receiver has priming stages to run; what the builder itself runs does not count."""
    election = builder_election(["a", "b"], [state("g1", ["deep_gemm"]), state("g1")])
    assert election["groups"]["g1"]["wanted"] is False and election["hosts"]["a"]["wanted"] is False


def test_groups_are_kept_apart():
    election = builder_election(["a", "b", "c", "d"], [state("g1"), state("g2", ["moe_tune"]), state("g1"), state("g2")])
    assert election["groups"]["g1"]["members"] == ["a", "c"] and election["groups"]["g2"]["members"] == ["b", "d"]
    assert election["groups"]["g2"]["wanted"] is False  # d, the receiver, has nothing to run
    assert election["hosts"]["d"]["builder"] == "b"


def test_lists_that_do_not_match_the_hosts_are_refused_with_a_message():
    with pytest.raises(AnsibleFilterError, match="2 hosts, 1 states"):
        builder_election(["a", "b"], [state("g1")])
