"""Generate ``highprec.json``: mpmath reference derivatives of the §2.2 rates, independent of the package.

Run from the repository root::

    python tests/reference/generate_highprec.py

The rates are written out here from the mixture definition (disjoint components, |D_a| = 1,
N_l = 1 + k + l, component masses c = (k w1, k w2 + 1, k w3 + l), w2 = w1 = (1 - w3)/2):
CE_a(l) = ln N_l - ln c_2 and CE_p(l) = sum_j w_j (ln N_l - ln c_j) in nats (entropy constants
dropped), and differentiated by ``mpmath.diff`` at DPS digits, then divided by ln 2 (bits per
response per unit l). Nothing is imported from ``elastic_theory``.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import mpmath

DPS = 60
DIGITS = 30
#: k up to 1e9 and l down to 1e-9 (THEORY §2 "Numerics"), plus w3 near 0 and near 1.
POINTS = [(k, l, w3) for k in ("1e3", "1e6", "1e9") for l in ("1e-3", "1e-6", "1e-9") for w3 in ("0.1", "0.9")]
OUT = Path(__file__).with_name("highprec.json")


def derivatives(k: str, l: str, w3: str) -> dict[str, str]:
    """d CE_a/dl and d CE_p/dl in bits as DIGITS-significant-digit strings; inputs are the float64 values of the strings."""
    with mpmath.workdps(DPS):
        K, L, W3 = (mpmath.mpf(float(x)) for x in (k, l, w3))
        w = ((1 - W3) / 2, (1 - W3) / 2, W3)

        def masses(x):
            return (K * w[0], K * w[1] + 1, K * w[2] + x), 1 + K + x

        def ce_a(x):
            c, n = masses(x)
            return mpmath.log(n) - mpmath.log(c[1])

        def ce_p(x):
            c, n = masses(x)
            return mpmath.fsum(wj * (mpmath.log(n) - mpmath.log(cj)) for wj, cj in zip(w, c))

        return {
            name: mpmath.nstr(mpmath.diff(f, L) / mpmath.log(2), DIGITS)
            for name, f in (("dgamma_a_dl", ce_a), ("dgamma_p_dl", ce_p))
        }


def generate() -> dict:
    """The file's content, provenance first."""
    return {
        "provenance": {
            "generator": "tests/reference/generate_highprec.py",
            "mpmath_version": mpmath.__version__,
            "dps": DPS,
            "date": datetime.date.today().isoformat(),
        },
        "units": "bits per response per unit l",
        "values": [{"k": k, "l": l, "w3": w3, **derivatives(k, l, w3)} for k, l, w3 in POINTS],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(generate(), indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {OUT}\n")
