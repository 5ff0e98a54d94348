"""Units shared by every layer: the one conversion between nats and bits."""

from __future__ import annotations

import math

__all__ = ["LN2"]

LN2 = math.log(2.0)
"""Nats per bit: a quantity in nats divided by ``LN2`` is in bits."""
