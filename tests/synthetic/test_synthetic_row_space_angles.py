"""``row_space_angles``: angles between weight row spaces (one name, one meaning)."""

from __future__ import annotations

import numpy as np

import synthetic.metrics
from synthetic.metrics import max_row_space_angle, row_space_angles


def test_the_ambiguous_name_is_gone_from_synthetic():
    # empirical.principal_angles compares sample-space principal components; synthetic's
    # function compares row spaces of weight matrices and is named for it.
    assert not hasattr(synthetic.metrics, "principal_angles")
    assert "principal_angles" not in synthetic.metrics.__all__


def test_row_space_angles_known_value_and_invariance():
    theta = 0.3
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(theta), np.sin(theta)]])
    np.testing.assert_allclose(row_space_angles(a, b), [0.0, theta], atol=1e-12)
    # The row space, not the rows: mixing the rows of b by an invertible matrix changes nothing.
    # (arccos of a cosine within round-off of 1 is only accurate to sqrt(2 eps) ~ 2e-8.)
    mixed = np.array([[2.0, 1.0], [-1.0, 3.0]]) @ b
    np.testing.assert_allclose(row_space_angles(a, mixed), [0.0, theta], atol=1e-7)
    np.testing.assert_allclose(max_row_space_angle(a, mixed), theta, atol=1e-12)
    # Negative control: an unrelated plane is far away.
    c = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert row_space_angles(a, c)[-1] > 1.5
