"""ROC AUC and the best threshold on groups whose answers are known."""

from __future__ import annotations

from authface_core.metrics.stats import best_threshold, roc_auc


def test_roc_auc_and_threshold_on_known_groups():
    assert roc_auc([0.1, 0.2], [0.8, 0.9]) == 1.0
    assert roc_auc([0.8, 0.9], [0.1, 0.2]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    threshold, accuracy = best_threshold([0.1, 0.2, 0.3], [0.7, 0.8])
    assert 0.3 <= threshold <= 0.7 and accuracy == 1.0
