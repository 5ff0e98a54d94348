"""High-precision references: committed mpmath values (tests/reference/highprec.json) vs the float64 closed forms."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from elastic_theory.theory import elasticity as el
from elastic_theory.theory import highprec

REFERENCE = Path(__file__).parents[1] / "reference" / "highprec.json"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_highprec", REFERENCE.with_name("generate_highprec.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_reference_file_matches_its_generator(reference):
    """The committed JSON is what tests/reference/generate_highprec.py produces: same points, same precision, values
    equal to 25 of their 30 digits. The mpmath version and date are provenance, not content: any mpmath the
    project allows (pyproject: >= 1.3) must reproduce the values."""
    import mpmath
    from packaging.version import Version

    fresh = _generator().generate()
    same = ("generator", "dps")
    assert {k: fresh["provenance"][k] for k in same} == {k: reference["provenance"][k] for k in same}
    assert set(reference["provenance"]) == {"generator", "mpmath_version", "dps", "date"}
    assert Version(reference["provenance"]["mpmath_version"]) >= Version("1.3")
    assert [{k: v for k, v in row.items() if k.startswith("dgamma") is False} for row in fresh["values"]] == [
        {k: v for k, v in row.items() if k.startswith("dgamma") is False} for row in reference["values"]
    ]
    for new, old in zip(fresh["values"], reference["values"]):
        for q in ("dgamma_a_dl", "dgamma_p_dl"):
            with mpmath.workdps(40):
                assert abs(mpmath.mpf(new[q]) / mpmath.mpf(old[q]) - 1) < mpmath.mpf("1e-25"), (new, old)


def test_closed_forms_have_ten_digits(reference):
    """For k <= 1e9 and l >= 1e-9 the float64 closed forms agree with the mpmath references to >= 10 digits."""
    for row in reference["values"]:
        k, l, w3 = (float(row[x]) for x in ("k", "l", "w3"))
        assert highprec.agreeing_digits(el.dgamma_a_dl_per_response(k, l), float(row["dgamma_a_dl"])) >= 10
        assert highprec.agreeing_digits(el.dgamma_p_dl_per_response(k, l, w3), float(row["dgamma_p_dl"])) >= 10


def test_library_reference_path_matches_committed(reference):
    """highprec.reference_derivatives (50 digits) agrees with the committed 60-digit values to >= 25 digits."""
    import mpmath

    for row in reference["values"]:
        ours = highprec.reference_derivatives(float(row["k"]), float(row["l"]), float(row["w3"]), dps=50)
        for q in ("dgamma_a_dl", "dgamma_p_dl"):
            with mpmath.workdps(40):
                rel = abs(mpmath.mpf(ours[q]) / mpmath.mpf(row[q]) - 1)
            assert rel < mpmath.mpf("1e-25")  # 30-digit strings from 50- and 60-digit runs


def test_float64_finite_differences_fail_where_closed_forms_hold():
    """Side by side: closed forms keep >= 10 digits everywhere; central differences keep < 1 digit at k = 1e9."""
    rows = highprec.precision_table()
    assert min(r.closed_form_digits for r in rows) >= 10
    at_1e9 = [r for r in rows if r.k == 1e9]
    assert max(r.finite_difference_digits for r in at_1e9) < 1
    assert len(rows) == 2 * len(highprec.DEFAULT_POINTS)


def test_agreeing_digits():
    """agreeing_digits: 17 for equal values, -log10 of the relative error otherwise, 0 for nonsense."""
    assert highprec.agreeing_digits(1.0, 1.0) == 17.0
    # 1.001's binary rounding (<= 1.1e-16) is <= 1.2e-13 of the difference 0.001: <= 5e-14 in log10.
    assert highprec.agreeing_digits(1.001, 1.0) == pytest.approx(3.0, abs=1e-13)
    assert highprec.agreeing_digits(float("nan"), 1.0) == 0.0
    assert highprec.agreeing_digits(-1.0, 1.0) == 0.0


def test_reference_needs_w3_positive():
    """The reference path rejects w3 = 0 and bad k."""
    with pytest.raises(ValueError, match="the reference path needs w3 > 0"):
        highprec.reference_derivatives(10, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"k = .* must be finite and > 0, got 0.0"):
        highprec.reference_derivatives(0, 0.1, 0.5)
