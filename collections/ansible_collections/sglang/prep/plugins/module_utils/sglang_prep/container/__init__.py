# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container program of sglang_prep: runs only inside the container (as devuser, or as PID 1).

Init and its services, the stage engine and runners, ledger, locks, signatures, the CLI. It imports
the shared contract from the package above; the host modules never import this package.
"""
