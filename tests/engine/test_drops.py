"""The report's summary of a rule's measured values (prepflow.engine.drops)."""

from __future__ import annotations

import numpy as np
import pytest

from prepflow.engine.drops import Group, histogram


@pytest.mark.parametrize("values", [[7.0], [3.0, 1.0], [5.0, 2.0, 9.0, 4.0], [1.5, 1.5, 8.0]])
def test_the_values_summary_is_numpys_min_median_max(values: list[float]) -> None:
    summary = Group("min_words: word_count < 50", len(values), values).to_dict()["values"]
    assert summary["min"] == np.min(values)
    assert summary["median"] == np.median(values)
    assert summary["max"] == np.max(values)
    assert sum(rows for _, _, rows in summary["histogram"]) == len(values)


def test_few_distinct_values_get_a_bin_each() -> None:
    assert histogram(np.array([3.0, 1.0, 3.0])) == [[1.0, 1.0, 1], [3.0, 3.0, 2]]
