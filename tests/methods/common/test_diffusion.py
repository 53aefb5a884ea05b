"""The shared DP: the denoiser as DPPO builds it (issue 14, part 1: its layers, parameter count and
forward), and a DP that learns a bimodal target and samples with DDIM.

Fast unit tests on synthetic data: no dataset, no env.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from methods.common.diffusion import DiffusionPolicy
from methods.common.dp_config import DPConfig
from methods.dppo.vpg import VPGDiffusion


# ---- the denoiser ------------------------------------------------------------------------------------------
def _dppo_gym_dp(obs_dim=11, act_dim=3, chunk=4) -> DiffusionPolicy:
    return DiffusionPolicy(obs_dim, act_dim, DPConfig(hidden=[512, 512, 512], residual=True, activation="relu",
                                                      time_dim=16), chunk)


def test_residual_relu_denoiser_has_dppos_parameter_count_and_layers():
    dp = _dppo_gym_dp()
    # DPPO's count for hopper (obs 11, act 3, Ta 4; cfg/gym/pretrain/hopper-medium-v2/pre_diffusion_mlp.yaml),
    # computed by reading irom-princeton/dppo at cc7234a, model/diffusion/mlp_diffusion.py DiffusionMLP and
    # model/common/mlp.py ResidualMLP (DiffusionModel's only parameters are its network's):
    #   time_embedding  Linear(16, 32) + Linear(32, 16)                 = 544 + 528           =   1,072
    #   ResidualMLP([39, 512, 512, 512, 12]), input 39 = 4*3 + 16 + 11:
    #     layers[0]      Linear(39, 512)                                 = 39*512 + 512        =  20,480
    #     one TwoLayerPreActivationResNetLinear (len(dims) - 3 = 2 hidden layers, one block):
    #                    Linear(512, 512) x 2                            = 2 * (512*512 + 512) = 525,312
    #     last           Linear(512, 12)                                 = 512*12 + 12         =   6,156
    #   total                                                                                    553,020
    assert sum(p.numel() for p in dp.parameters()) == 553_020
    net = dp.denoiser.net
    shapes = [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(39, 512), (512, 512), (512, 512), (512, 12)]
    assert not any(isinstance(m, nn.LayerNorm) for m in dp.modules())  # use_layernorm: False


def test_residual_denoiser_computes_dppos_forward():
    """DPPO's forward: h = L0(cat[x, time_emb, s]); h = h + L2(relu(L1(relu(h)))); out = L3(h): no activation
    after the input layer nor before the output, pre-activation inside the block, a skip around it."""
    torch.manual_seed(0)
    dp = _dppo_gym_dp()
    den = dp.denoiser
    l0, l1, l2, l3 = [m for m in den.net.modules() if isinstance(m, nn.Linear)]
    x, s, t = torch.randn(5, 4, 3), torch.randn(5, 11), torch.randint(0, 20, (5,))
    # time embedding: sinusoidal(16) -> Linear -> Mish -> Linear (Mish whatever the activation)
    half = 8
    freqs = torch.exp(torch.arange(half) * (-np.log(10000.0) / (half - 1)))
    sin = torch.cat([(t.float()[:, None] * freqs).sin(), (t.float()[:, None] * freqs).cos()], -1)
    lin_t = [m for m in den.time.modules() if isinstance(m, nn.Linear)]
    emb = lin_t[1](nn.functional.mish(lin_t[0](sin)))
    h = l0(torch.cat([x.reshape(5, -1), emb, s], -1))
    h = h + l2(torch.relu(l1(torch.relu(h))))
    want = l3(h).reshape(5, 4, 3)
    torch.testing.assert_close(den(x, t, s), want)
    # the plain MLP of the same widths is a different function of the same parameters' shapes
    plain = DiffusionPolicy(11, 3, DPConfig(hidden=[512, 512, 512], activation="relu"), 4).denoiser
    plain.load_state_dict({k.replace("net.inp.", "net.0.").replace("net.blocks.0.fc1.", "net.2.")
                           .replace("net.blocks.0.fc2.", "net.4.").replace("net.out.", "net.6."): v
                           for k, v in den.state_dict().items()})
    assert not torch.allclose(plain(x, t, s), want)


def test_kitchen_denoiser_encodes_the_observation_first():
    # DPPO's kitchen: mlp_dims [256]*3, cond_mlp_dims [128, 32], Mish, residual (obs 60, act 9, Ta 4):
    # time 1,072 + cond_mlp Linear(60,128) 7,808 + Linear(128,32) 4,128 + Linear(36+16+32=84, 256) 21,760
    # + one block 2*(256*256+256) 131,584 + Linear(256, 36) 9,252 = 175,604.
    dp = DiffusionPolicy(60, 9, DPConfig(hidden=[256] * 3, residual=True, cond_hidden=[128, 32]), 4)
    assert sum(p.numel() for p in dp.parameters()) == 175_604
    assert dp.denoiser(torch.randn(2, 4, 9), torch.zeros(2, dtype=torch.long), torch.randn(2, 60)).shape == (2, 4, 9)


def test_dp_learns_a_bimodal_target_and_ddim_samples():
    torch.manual_seed(0)
    dp = DiffusionPolicy(1, 1, DPConfig(hidden=[64, 64]), chunk=2)
    opt = torch.optim.Adam(dp.parameters(), lr=3e-3)
    cond = torch.zeros(256, 1)
    losses = []
    for _ in range(1500):
        x0 = (torch.randint(0, 2, (256, 1, 1)).float() * 1.2 - 0.6).expand(256, 2, 1)
        loss = dp.loss(x0, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-100:]) < 0.3 * np.mean(losses[:50])
    g = torch.Generator().manual_seed(0)
    x = dp.sample(torch.zeros(200, 1), generator=g)
    assert x.shape == (200, 2, 1) and x.abs().max() <= 1
    near = ((x - 0.6).abs() < 0.25) | ((x + 0.6).abs() < 0.25)
    assert near.float().mean() > 0.8
    dp.denoiser_calls = 0
    dp.sample(torch.zeros(4, 1), generator=g, sampler="ddim")
    assert dp.denoiser_calls == dp.cfg.ddim_steps


def test_a_chain_embeds_its_steps_and_encodes_its_obs_once():
    """The time MLP and the condition encoder depend on the step and the obs only: a chain runs each once for all
    its steps (one call per network: DPPO's fine-tuned and frozen denoisers), and gives what the per-step,
    per-row computation gives."""
    torch.manual_seed(0)
    cfg = DPConfig(hidden=[64] * 3, residual=True, cond_hidden=[32, 8])
    dp = VPGDiffusion(5, 2, cfg, 4, ft_denoising_steps=6).eval()
    with torch.no_grad():  # the two networks differ, as after fine-tuning
        for p in dp.denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    calls = []
    for net in (dp.denoiser, dp.denoiser_base):
        for part in (net.time, net.cond):
            part.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    cond, x = torch.randn(7, 5), torch.randn(7, 4, 2)
    steps = [19, 14, 9, 4, 0]
    got = dp.ddim_from(x, cond, steps)
    assert sorted(calls) == [2, 3, 7, 7]  # time: 3 frozen steps, 2 fine-tuned; cond: once per network
    # the same chain, each step through eps(x_t, t, s) with a step per row (05edce8's computation)
    c = dp._chain
    want = x
    for i, j in zip(steps, steps[1:] + [None]):
        eps = dp.eps(want, torch.full((7,), i), cond)
        x0 = ((want - eps * c["sqrt_1m_ab"][i]) / c["sqrt_ab"][i]).clamp(-1, 1)
        want = x0 if j is None else x0 * c["sqrt_ab"][j] + eps * c["sqrt_1m_ab"][j]
    torch.testing.assert_close(got, want.clamp(-1, 1), atol=1e-6, rtol=1e-6)
    calls.clear()
    dp.sample(cond, generator=torch.Generator().manual_seed(0))
    assert sorted(calls) == [6, 7, 7, 14]
