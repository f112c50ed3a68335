# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic JSON and text writes: write a sibling .tmp file, fsync, rename."""

from __future__ import annotations

import json
import os


def write_text_atomic(path, text):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        # a full disk (or any failed write) leaves the previous file as it was, and no half-written sibling
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if not exc.filename:
            exc.filename = path  # a failed write() names no file: the error names the one being written
        raise


def write_json_atomic(path, data):
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
