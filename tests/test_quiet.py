"""--quiet keeps NumPy's floating-point warnings off stderr; without it they still show."""

import warnings

import numpy as np
import pytest

from reportgen.cli.main import quiet_numpy


def divide_by_zero() -> None:
    np.log(np.zeros(3))  # RuntimeWarning: divide by zero


def test_quiet_silences_numpy_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"), quiet_numpy(True):
            divide_by_zero()
    assert caught == []


def test_without_quiet_numpy_warnings_still_show() -> None:
    with np.errstate(all="warn"), quiet_numpy(False):
        with pytest.warns(RuntimeWarning):
            divide_by_zero()
