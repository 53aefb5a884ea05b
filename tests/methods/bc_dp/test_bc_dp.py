"""bc_dp executes `dp.act_steps` actions of its chunk, and its timed components say so."""
from __future__ import annotations

import numpy as np
import pytest

from methods.common.dp_config import DPConfig
from tests.helpers import dp_context


@pytest.mark.parametrize("act_steps, executed", [(2, 2), (0, 4), (4, 4), (1, 1)])
def test_bc_dp_executes_act_steps_of_its_chunk_and_its_timing_says_so(act_steps, executed):
    from methods.base import ActorState
    from methods.bc_dp import BCDP
    from methods.bc_dp.config import BCDPConfig

    m = BCDP(BCDPConfig(), dp_context(DPConfig(hidden=[16, 16], denoising_steps=3, act_steps=act_steps)))
    out, extras = m.act(np.zeros((3, 5), np.float32), "dp", ActorState.create(0), True)
    assert out.shape == (3, executed, 2) and extras == {}
    comps = m.timed_components(batch_size=2)
    assert comps["act"].actions_per_call == executed
