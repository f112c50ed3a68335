# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The classified error every layer raises and reports (error_type + a message a person can act on)."""

from __future__ import annotations

from . import contract


class PrepError(Exception):
    """A failure with an ``error_type`` from contract.ERROR_TYPES and actionable text."""

    def __init__(self, error_type, message, **details):
        if error_type not in contract.ERROR_TYPES:
            raise ValueError("unknown error_type %r" % error_type)
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.details = details

    def as_dict(self):
        out = {"error_type": self.error_type, "message": self.message}
        out.update(self.details)
        return out
