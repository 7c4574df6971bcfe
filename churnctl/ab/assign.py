"""Deterministic, sticky assignment of customers to variants by a salted hash.

sha256(salt ":" customer id) read as a number in [0, 1) falls into one variant's share of
the unit interval, in the order the profile lists the variants. The same customer gets the
same variant on every request, every replica and every restart; changing the salt reshuffles
everyone (a new experiment); changing a weight moves only customers near the boundaries.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from churnctl.errors import UserError


def check_weights(variants: Mapping[str, float]) -> dict[str, float]:
    """The variants' weights, checked: two or more, each > 0, summing to 1."""
    if len(variants) < 2:
        raise UserError(f"an A/B test needs two or more variants, got {list(variants)}: set "
                        "serve.options.variants, e.g. {champion: 0.9, challenger: 0.1}")
    bad = [name for name, weight in variants.items() if not weight > 0]
    if bad:
        raise UserError(f"serve.options.variants: weights of {bad} must be above 0")
    total = sum(variants.values())
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise UserError(f"serve.options.variants: weights sum to {total:g}, not 1")
    return dict(variants)


def bucket(customer_id: object, salt: str) -> float:
    """The customer's point in [0, 1): the first 8 bytes of the salted hash."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(customer_id: object, variants: Mapping[str, float], salt: str) -> str:
    point, edge = bucket(canonical_id(customer_id), salt), 0.0
    names = list(variants)
    for name in names:
        edge += variants[name]
        if point < edge:
            return name
    return names[-1]  # rounding of the last edge


def canonical_id(customer_id: object) -> str:
    """10, "10" and 10.0 are one customer (as the API's id look-up treats them)."""
    if isinstance(customer_id, float) and customer_id.is_integer():
        return str(int(customer_id))
    return str(customer_id).strip()
