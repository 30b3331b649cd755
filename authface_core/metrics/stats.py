"""Two-sample statistics for calibrating and checking identity thresholds (no scikit-learn needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def roc_auc(low: Sequence[float], high: Sequence[float]) -> float:
    """Probability that a value of ``high`` exceeds one of ``low`` (ties count half): the ROC AUC of
    a score meant to be low for the first group (same person) and high for the second (different)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.size == 0 or high.size == 0:
        raise ValueError("roc_auc needs at least one value in each group")
    greater = (high[None, :] > low[:, None]).mean()
    ties = (high[None, :] == low[:, None]).mean()
    return float(greater + 0.5 * ties)


def best_threshold(low: Sequence[float], high: Sequence[float]) -> tuple[float, float]:
    """The cut between the groups with the best balanced accuracy (values <= cut are called "low").

    Returns (threshold, balanced accuracy); the threshold is the midpoint between neighbouring values.
    """
    low, high = np.sort(np.asarray(low, dtype=np.float64)), np.sort(np.asarray(high, dtype=np.float64))
    values = np.unique(np.concatenate([low, high]))
    cuts = np.concatenate([[values[0] - 1e-9], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-9]])
    true_low = np.searchsorted(low, cuts, side="right") / low.size
    true_high = 1.0 - np.searchsorted(high, cuts, side="right") / high.size
    balanced = (true_low + true_high) / 2
    best = int(np.argmax(balanced))
    return float(cuts[best]), float(balanced[best])
