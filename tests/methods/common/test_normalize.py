"""The normaliser: actions map to [-1, 1] and back."""
from __future__ import annotations

import numpy as np
import torch

from methods.common.normalize import Normalizer


def test_normalizer_actions_roundtrip():
    n = Normalizer.fit(np.random.randn(100, 3) * 5 + 2, act_low=[-2, 0], act_high=[2, 1])
    a = torch.tensor([[-2.0, 0.0], [0.0, 0.5], [2.0, 1.0]])
    z = n.norm_act(a)
    assert torch.allclose(z, torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(n.unnorm_act(z), a)
