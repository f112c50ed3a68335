"""A normal ansible-playbook run prints no Python warning (cryptography 51 deprecated DSA, and ansible-core's
ssh-agent code imports it: requirements.txt holds cryptography below 51). Nothing filters warnings: the run
below turns every Python warning on (-W default), so a new one fails this test."""

import os
import subprocess
import sys

from unit_support.paths import REPO
BIN = os.path.dirname(sys.executable)


def test_ansible_playbook_prints_no_python_warning():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONWARNINGS"}
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PYTHONWARNINGS="default")
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory/localhost.yml",
                           "playbooks/validate.yml", "--syntax-check"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
