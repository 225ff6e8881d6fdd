"""Each loss against a value worked out by hand on a tiny case."""
import math

import numpy as np

import pytest
import torch

from matry_index.adaptor import losses


def test_prefix_cosines_renormalises_each_prefix():
    a = torch.tensor([[3.0, 4.0, 100.0]])
    b = torch.tensor([[[4.0, 3.0, -50.0], [0.0, 1.0, 0.0]]])
    # 2-d prefixes: (3,4)/5 · (4,3)/5 = 24/25 ; (3,4)/5 · (0,1) = 4/5
    out = losses.prefix_cosines(a, b, 2)
    assert out[0].tolist() == pytest.approx([24 / 25, 4 / 5])
    shared = losses.prefix_cosines(a, b[0], 2)
    assert shared[0].tolist() == pytest.approx([24 / 25, 4 / 5])


def test_similarity_preservation_loss_is_mean_absolute_error():
    target = torch.tensor([[0.9, 0.1], [0.5, -0.2]])
    pred = torch.tensor([[0.7, 0.4], [0.5, 0.2]])
    # |0.2| + |0.3| + 0 + |0.4| = 0.9 over 4 pairs
    assert float(losses.similarity_preservation_loss(target, pred)) == pytest.approx(0.225)
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(losses.similarity_preservation_loss(target, pred, mask)) == pytest.approx(0.3)


def test_listwise_kl_loss_by_hand():
    target = torch.tensor([[1.0, 0.0]])
    pred = torch.tensor([[0.0, 0.0]])
    # T = 1: p = softmax(1, 0) = (e/(e+1), 1/(e+1)); q = (1/2, 1/2)
    p1, p2 = math.e / (math.e + 1), 1 / (math.e + 1)
    expected = p1 * math.log(p1 / 0.5) + p2 * math.log(p2 / 0.5)
    assert float(losses.listwise_kl_loss(target, pred, 1.0)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.listwise_kl_loss(target, target, 0.05)) == pytest.approx(0.0, abs=1e-7)


def test_listwise_kl_loss_ignores_masked_entries():
    target = torch.tensor([[1.0, 0.0, 5.0]])
    pred = torch.tensor([[0.0, 0.0, -5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    for temperature in (1.0, 0.05):  # 0.05, the default, once overflowed the excluded entries
        unmasked = losses.listwise_kl_loss(target[:, :2], pred[:, :2], temperature)
        masked = losses.listwise_kl_loss(target, pred, temperature, mask)
        assert float(masked) == pytest.approx(float(unmasked), rel=1e-5)


def test_reconstruction_loss_is_mean_abs_residual():
    assert float(losses.reconstruction_loss(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))) == pytest.approx(1.5)


def test_ranking_loss_by_hand():
    scores = torch.tensor([[0.8, 0.2, 0.5]])
    relevance = torch.tensor([[2.0, 1.0, 0.0]])
    # pairs with y_j > y_k: (0,1) w=1, (0,2) w=2, (1,2) w=1 ; loss term w·log(1+exp(s_k − s_j))
    terms = [1 * math.log1p(math.exp(0.2 - 0.8)), 2 * math.log1p(math.exp(0.5 - 0.8)),
             1 * math.log1p(math.exp(0.5 - 0.2))]
    assert float(losses.ranking_loss(scores, relevance)) == pytest.approx(sum(terms) / 3, rel=1e-5)
    scaled = [1 * math.log1p(math.exp(10 * (0.2 - 0.8))), 2 * math.log1p(math.exp(10 * (0.5 - 0.8))),
              1 * math.log1p(math.exp(10 * (0.5 - 0.2)))]
    assert float(losses.ranking_loss(scores, relevance, scale=10)) == pytest.approx(sum(scaled) / 3, rel=1e-5)


def test_ranking_loss_mask_drops_padded_candidates():
    scores = torch.tensor([[0.8, 0.2, 0.9]])
    relevance = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    expected = math.log1p(math.exp(0.2 - 0.8))
    assert float(losses.ranking_loss(scores, relevance, mask=mask)) == pytest.approx(expected, rel=1e-5)


def test_softmax_ranking_loss_by_hand():
    scores = torch.tensor([[0.8, 0.2, 0.5], [0.1, 0.3, 0.0]])
    relevance = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # the second query has no positive
    # target (2/3, 1/3, 0); loss = −Σ target · log softmax(2 · scores)
    logits = [1.6, 0.4, 1.0]
    log_z = math.log(sum(math.exp(v) for v in logits))
    expected = -(2 / 3 * (logits[0] - log_z) + 1 / 3 * (logits[1] - log_z))
    got = losses.softmax_ranking_loss(scores, relevance, scale=2.0)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # drop the third candidate
    log_z = math.log(math.exp(1.6) + math.exp(0.4))
    expected = -(2 / 3 * (1.6 - log_z) + 1 / 3 * (0.4 - log_z))
    got = losses.softmax_ranking_loss(scores, relevance, scale=2.0, mask=mask)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # at the default scale (20) the excluded entries must still drop out, not overflow to NaN
    log_z = math.log(math.exp(16.0) + math.exp(4.0))
    expected = -(2 / 3 * (16.0 - log_z) + 1 / 3 * (4.0 - log_z))
    got = losses.softmax_ranking_loss(scores, relevance, scale=20.0, mask=mask)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_smooth_rank_counts_the_negatives_above_each_positive_and_pushes_them_down():
    from matry_index.adaptor.losses import smooth_rank_loss
    positive = torch.tensor([[0.9, 0.5]], requires_grad=True)
    hard = torch.tensor([[0.8, 0.7, 0.6]], requires_grad=True)
    sampled = torch.tensor([0.0, 0.1])
    loss = smooth_rank_loss(positive, hard, sampled, sampled_weight=10.0, temperature=1e-3, target=1.0)
    # ranks: 0.9 is above everything (0), 0.5 is below all three hard negatives (3)
    assert loss.item() == pytest.approx((np.log1p(0.0) + np.log1p(3.0)) / 2, abs=1e-4)
    loss = smooth_rank_loss(positive, hard, sampled, sampled_weight=10.0, temperature=0.05)
    loss.backward()
    assert (positive.grad < 0).all() and (hard.grad > 0).all()  # descent lifts positives, lowers negatives
