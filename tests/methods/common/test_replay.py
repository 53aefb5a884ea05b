"""The replay buffer: sequences and chunks stay inside their episode, online/offline mixing, extras and
save/load; decision transitions (a chunk critic's data) sum the chunk's rewards and stop at its episode's
end, and whole=True redraws those cut short by a timeout or by the end of the data.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.common.replay import ReplayBuffer


def _buffer(n_eps=3, ep_len=5, extras=None):
    b = ReplayBuffer(2, 1, extras=extras, seed=0)
    obs = np.arange(n_eps * ep_len, dtype=np.float32)[:, None].repeat(2, 1)
    term = np.zeros(n_eps * ep_len, bool)
    tout = np.zeros(n_eps * ep_len, bool)
    term[ep_len - 1] = True  # episode 0 ends in a terminal, the others in timeouts
    tout[2 * ep_len - 1] = tout[3 * ep_len - 1] = True
    b.add_offline(obs, obs[:, :1], obs[:, 0], obs + 1, term, tout)
    return b


def test_buffer_sequences_never_cross_episodes():
    b = _buffer()
    s = b.sample_sequences(200, 3, source="offline")
    o = s["obs"][..., 0].numpy()
    assert np.all(np.diff(o, axis=1) == 1)  # consecutive
    assert np.all((o[:, 0] // 5) == (o[:, -1] // 5))  # same episode
    assert set(np.unique(o[:, 0] % 5)) == {0, 1, 2}


def test_buffer_chunks_pad_with_last_action_of_episode():
    b = _buffer()
    c = b.sample_chunks(100, 4, idx=np.array([3, 4, 8, 10]))
    a = c["action_chunk"][..., 0].numpy()
    np.testing.assert_array_equal(a[0], [3, 4, 4, 4])
    np.testing.assert_array_equal(a[1], [4, 4, 4, 4])
    np.testing.assert_array_equal(a[2], [8, 9, 9, 9])
    np.testing.assert_array_equal(a[3], [10, 11, 12, 13])


def test_buffer_mixing_extras_and_save_load():
    b = _buffer(extras={"label": (2,)})
    for i in range(6):
        b.add({"obs": np.full(2, 100 + i), "action": np.zeros(1), "reward": 1.0, "next_obs": np.zeros(2),
               "terminal": False, "timeout": i == 5, "label": np.ones(2) * i if i % 2 == 0 else None})
    assert b.n_online == 6
    s = b.sample(1000, source="mixed", online_ratio=0.25)
    frac = (s["obs"][:, 0] >= 100).float().mean().item()
    assert 0.2 < frac < 0.3
    lab = b.sample(50, require="label")
    assert lab["has_label"].all() and set(lab["label"][:, 0].tolist()) <= {0.0, 2.0, 4.0}
    # recent=k draws only among the last k transitions (labels at online steps 0, 2, 4; the last 3 hold only 4)
    recent = b.sample(50, source="online", require="label", recent=3)
    assert set(recent["label"][:, 0].tolist()) == {4.0}
    assert b.carries("label", source="online", recent=3) and not b.carries("label", source="offline")
    assert not b.carries("label", source="online", recent=1)  # online step 5 carries no label
    st = b.state_dict()
    b2 = ReplayBuffer(2, 1, extras={"label": (2,)})
    b2.load_state_dict(st)
    x1, x2 = b.sample(32), b2.sample(32)
    for k in x1:
        assert torch.equal(x1[k], x2[k])
    # the online episode got its own id, and its sequence sampling stays inside it
    seq = b2.sample_sequences(20, 6, source="online")
    assert (seq["obs"][:, 0, 0] == 100).all()


def test_decision_transitions_sum_the_chunk_and_stop_at_the_episode_end():
    buf = ReplayBuffer(1, 1, seed=0)
    r = np.arange(1, 7, dtype=np.float32)  # one 6-step episode ending in a terminal, then a 2-step one
    obs = np.arange(8, dtype=np.float32)[:, None]
    term = np.zeros(8, bool)
    term[5] = True
    tout = np.zeros(8, bool)
    tout[7] = True
    buf.add_offline(obs, obs * 10, np.concatenate([r, [100, 200]]).astype(np.float32), obs + 0.5, term, tout)
    d = buf.sample_decisions(4, 3, idx=np.array([0, 4, 5, 6]))
    assert d["reward"].tolist() == [1 + 2 + 3, 5 + 6, 6, 100 + 200]
    assert d["steps"].tolist() == [3, 2, 1, 2]
    assert d["next_obs"][:, 0].tolist() == [2.5, 5.5, 5.5, 7.5]
    assert d["terminal"].tolist() == [False, True, True, False]
    assert d["action_chunk"][1, :, 0].tolist() == [40, 50, 50]  # padded with the episode's last action
    g = buf.sample_decisions(1, 3, idx=np.array([0]), step_gamma=0.5)
    assert float(g["reward"][0]) == pytest.approx(1 + 0.5 * 2 + 0.25 * 3)
    # whole=True: the decisions cut short by the terminal (rows 4, 5) stay; the one cut by the timeout (row 6) is
    # redrawn, here among rows 0-5 (whole, or cut by the terminal); so is one cut by the end of the data (row 7)
    w = buf.sample_decisions(5, 3, idx=np.array([0, 4, 5, 6, 7]), whole=True)
    idx = w["index"].tolist()
    assert idx[:3] == [0, 4, 5] and all(0 <= i <= 5 for i in idx[3:])
    assert w["steps"].tolist()[:3] == [3, 2, 1]
    assert buf.sample_decisions(2, 3, idx=np.array([6, 7]))["steps"].tolist() == [2, 1]  # what was redrawn
