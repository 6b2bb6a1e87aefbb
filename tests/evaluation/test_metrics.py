"""The agreement arithmetic against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from app_package.evaluation.metrics import (
    OUTSIDE,
    agreement,
    compare_cells,
    confusion_matrix,
    kappa,
)


def test_confusion_matrix_counts_pairs_and_leaves_out_negative_indices() -> None:
    ref = np.array([0, 0, 1, 1, 1, OUTSIDE, 2])
    got = np.array([0, 1, 1, 1, 0, 1, OUTSIDE])
    cm = confusion_matrix(ref, got, 3, 2)
    assert cm.tolist() == [[1, 1], [1, 2], [0, 0]]
    with pytest.raises(ValueError):
        confusion_matrix(np.array([3]), np.array([0]), 3, 2)


def test_kappa_of_a_known_two_class_matrix() -> None:
    # p_o = 35/50 = 0.7; p_e = (25·30 + 25·20)/50² = 0.5; kappa = 0.2/0.5 = 0.4
    cm = np.array([[20, 5], [10, 15]])
    assert kappa(cm, np.eye(2, dtype=bool)) == pytest.approx(0.4)
    a = agreement(cm, np.eye(2, dtype=bool))
    assert a.overall_accuracy == pytest.approx(0.7)
    assert a.per_class == [pytest.approx(0.8), pytest.approx(0.6)]
    assert a.balanced_accuracy == pytest.approx(0.7)
    assert a.cells.tolist() == [25, 25] and a.agreeing.tolist() == [20, 15]


def test_kappa_three_classes_and_perfect_and_undefined() -> None:
    # rows 10/10/10, columns 12/9/9, diagonal 8+7+6 = 21: p_o = 0.7, p_e = (120+90+90)/900
    cm = np.array([[8, 1, 1], [2, 7, 1], [2, 2, 6]])
    p_e = 300 / 900
    assert kappa(cm, np.eye(3, dtype=bool)) == pytest.approx((0.7 - p_e) / (1 - p_e))
    assert kappa(np.diag([3, 4]), np.eye(2, dtype=bool)) == pytest.approx(1.0)
    # one class only: chance agreement is 1, kappa undefined
    assert kappa(np.array([[5]]), np.array([[True]])) is None
    assert kappa(np.zeros((2, 2), int), np.eye(2, dtype=bool)) is None


def test_several_accepted_classes_count_as_agreement() -> None:
    """Row 0 accepts columns 0 and 1: 0/1 weights in kappa's observed and chance terms."""
    cm = np.array([[6, 4, 0], [0, 2, 8]])
    accept = np.array([[True, True, False], [False, False, True]])
    a = agreement(cm, accept)
    assert a.agreeing.tolist() == [10, 8]
    assert a.overall_accuracy == pytest.approx(18 / 20)
    assert a.balanced_accuracy == pytest.approx((1.0 + 0.8) / 2)
    # rows 10/10, columns 6/6/8: p_e = (10·6 + 10·6 + 10·8) / 400 = 0.5
    assert a.kappa == pytest.approx((0.9 - 0.5) / 0.5)


def test_a_class_without_cells_has_no_agreement_and_is_left_out_of_balanced() -> None:
    a = agreement(np.array([[3, 1], [0, 0]]), np.eye(2, dtype=bool))
    assert a.per_class == [pytest.approx(0.75), None]
    assert a.balanced_accuracy == pytest.approx(0.75)


def test_compare_cells_counts_each_reason_for_leaving_a_cell_out() -> None:
    reference = np.array([[0, 0, 1, OUTSIDE], [1, OUTSIDE, 1, 1]])
    conflict = np.array([[False, False, False, False], [False, True, False, False]])
    values = np.array([[2, 255, 10, 1], [0, 2, 7, 10]], dtype=np.uint8)
    column, x = compare_cells(reference, conflict, values, np.arange(10), 255)
    assert column.tolist() == [[2, OUTSIDE, OUTSIDE, OUTSIDE], [0, OUTSIDE, 7, OUTSIDE]]
    assert (x.reference_cells, x.overlapping, x.nodata, x.not_a_class) == (7, 1, 1, {10: 2})
    assert x.total == 4
