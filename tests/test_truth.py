"""Distance to the demo language's truth on hand-made rows with known answers."""

import math

import pytest
import torch

from worker.distill.truth import choice_rows, kl_true, top5_overlap


def test_kl_true_known_values():
    truth = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    # Logits of [0.25, 0.25, 0.5] and [0.5, 0.25, 0.25].
    logits = torch.tensor([[0.0, 0.0, math.log(2)], [math.log(2), 0.0, 0.0]])
    expected = 0.5 * math.log(0.5 / 0.25) * 2 + math.log(1 / 0.5)
    assert float(kl_true(logits, truth)) == pytest.approx(expected, abs=1e-6)
    # At T → the logits flatten: at T = 1e6 the model is uniform over 3.
    uniform = 0.5 * math.log(0.5 * 3) * 2 + math.log(3)
    assert float(kl_true(logits, truth, 1e6)) == pytest.approx(uniform, abs=1e-4)
    assert float(kl_true(truth.clamp_min(1e-30).log(), truth)) == pytest.approx(0.0, abs=1e-5)


def test_top5_overlap_counts_rows_with_a_choice_and_ties():
    truth = torch.tensor(
        [
            [0.4, 0.3, 0.1, 0.1, 0.05, 0.05, 0.0],  # 6 words: m = 5, 0.05 tied at the 5th
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.4],  # 2 words: m = 2
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # no choice: not counted
        ]
    )
    assert choice_rows(truth).tolist() == [True, True, False]
    logits = torch.tensor(
        [
            # Top 5: 0, 1, 2, 4, 5. Word 3 (0.1) lies strictly inside the truth's top 5 and
            # is missed; 4 and 5 tie at the 5th place, which only one of them can take: 4/5.
            [7.0, 6.0, 5.0, 1.0, 4.0, 3.0, 2.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0],  # top 2: word 5 and one of 0..4: half
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ]
    )
    total, rows = top5_overlap(logits, truth)
    assert rows == 2
    assert float(total) == pytest.approx(0.8 + 0.5)
    # The same top 5 with word 3 in place of word 5: all five places right.
    right = logits.clone()
    right[0] = torch.tensor([7.0, 6.0, 5.0, 4.5, 4.0, 1.0, 2.0])
    assert float(top5_overlap(right, truth)[0]) == pytest.approx(1.0 + 0.5)
    # Either tied word may take the 5th place.
    other = right.clone()
    other[0] = torch.tensor([7.0, 6.0, 5.0, 4.5, 1.0, 4.0, 2.0])
    assert float(top5_overlap(other, truth)[0]) == pytest.approx(1.0 + 0.5)
    # The same ranking at any temperature.
    assert float(top5_overlap(logits / 4, truth)[0]) == float(total)
