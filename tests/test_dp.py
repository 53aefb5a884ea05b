"""The shared DP as DPPO builds it (issue 14, part 1): the denoiser's layer structure, the common start's lr and
EMA schedules, `dp.act_steps`, and the suite defaults of the `dp` and `common_start` sections.

Fast unit tests on synthetic data: no dataset, no env.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from methods.common.common_start import lr_at, train_common_start
from methods.common.common_start_config import CommonStartConfig
from methods.common.diffusion import DiffusionPolicy
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.common.section import ConfigError


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


def test_residual_needs_an_odd_number_of_equal_widths():
    from bench.config.parse import parse_section

    for hidden in ([32, 32], [64, 32, 32], []):
        with pytest.raises(ConfigError, match="dp.residual"):
            parse_section(DPConfig, {"residual": True, "hidden": hidden}, "dp.")
    parse_section(DPConfig, {"residual": True, "hidden": [32] * 5}, "dp.")  # two blocks
    with pytest.raises(ConfigError, match="dp.activation"):
        parse_section(DPConfig, {"activation": "swish2"}, "dp.")


# ---- the common start's schedules --------------------------------------------------------------------------
def test_cosine_schedule_runs_from_the_peak_to_lr_min_over_the_budget():
    cfg = CommonStartConfig(steps=1000, lr_schedule="cosine", lr_min=1e-4)
    lrs = [lr_at(i, cfg, 1e-3) for i in range(cfg.steps)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert lrs[500] == pytest.approx(1e-4 + 0.5 * 9e-4, rel=1e-2) and all(np.diff(lrs) <= 0)
    # with DPPO's warm-up: linear from lr_min, the peak at the end of the warm-up, lr_min at the last step
    w = CommonStartConfig(steps=1000, lr_schedule="cosine", lr_min=1e-4, lr_warmup=100)
    assert lr_at(0, w, 1e-3) == pytest.approx(1e-4) and lr_at(50, w, 1e-3) == pytest.approx(5.5e-4)
    assert lr_at(100, w, 1e-3) == pytest.approx(1e-3) and lr_at(999, w, 1e-3) == pytest.approx(1e-4)


def _buffer(seed=3, n=400, obs_dim=5, act_dim=2) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    b = ReplayBuffer(obs_dim, act_dim, seed=seed)
    timeouts = np.zeros(n, bool)
    timeouts[99::100] = True
    b.add_offline(rng.normal(size=(n, obs_dim)).astype(np.float32), rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
                  np.ones(n, np.float32), rng.normal(size=(n, obs_dim)).astype(np.float32), np.zeros(n, bool), timeouts)
    return b


def _normalizer(obs_dim=5, act_dim=2) -> Normalizer:
    return Normalizer.fit(np.random.default_rng(1).normal(size=(100, obs_dim)), -np.ones(act_dim), np.ones(act_dim))


def _train(cs: CommonStartConfig, dp: DPConfig | None = None):
    dp = dp or DPConfig(hidden=[16, 16])
    return train_common_start(cs, dp, 5, 2, 4, _normalizer(), _buffer(), 0, torch.device("cpu"))[0]


def test_the_training_loop_uses_the_pretraining_lr_schedule_and_clip(monkeypatch):
    """The optimiser sees common_start.lr's cosine (not dp.lr), common_start.grad_clip (not dp.grad_clip),
    and goes back to dp.lr, the fine-tuning lr, at the end."""
    from methods.common import diffusion

    seen = []
    original = diffusion.DPModule.train_step

    def spy(self, *a, **kw):
        seen.append((self.optim.param_groups[0]["lr"], kw.get("grad_clip")))
        return original(self, *a, **kw)

    monkeypatch.setattr(diffusion.DPModule, "train_step", spy)
    cs = CommonStartConfig(steps=20, batch_size=8, lr=1e-3, lr_schedule="cosine", lr_min=1e-4, grad_clip=0.0)
    state = _train(cs)
    lrs = [lr for lr, _ in seen]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4) and {c for _, c in seen} == {0.0}
    assert state["dp"]["optim"]["param_groups"][0]["lr"] == DPConfig().lr


def test_ema_copies_the_live_weights_until_ema_start_then_lags():
    def ema_and_live(steps, **kw):
        st = _train(CommonStartConfig(steps=steps, batch_size=8, ema_start=6, **kw))["dp"]
        return st["ema"], st["policy"]

    with pytest.warns(UserWarning, match="never averages"):
        ema6, live6 = ema_and_live(6)  # the budget ends at ema_start: the EMA is still the live weights
    assert all(torch.equal(ema6[k], live6[k]) for k in live6)
    ema12, live12 = ema_and_live(12)  # six averaged steps later the EMA trails the live weights
    keys = [k for k in live12 if live12[k].is_floating_point()]
    dist = lambda a, b: sum(float((a[k] - b[k]).norm() ** 2) for k in keys) ** 0.5
    assert dist(ema12, live12) > 0
    # same seed and data: the first 6 steps are the same, and the EMA stays near where it started averaging
    assert dist(ema12, live6) < dist(live12, live6)
    # DPPO's cadence (update_ema_freq 10): touched after steps 1, 11, 21, ...; before ema_start a touch copies
    ema, live = ema_and_live(11, ema_every=10)  # touched after step 1 (1 <= 6: a copy) and step 11 (averaged)
    assert dist(ema, live) > 0
    ema, live = ema_and_live(10, ema_every=10)  # touched after step 1 only: the copy of step 1's weights
    with pytest.warns(UserWarning, match="never averages"):
        st1 = _train(CommonStartConfig(steps=1, batch_size=8, ema_start=6, ema_every=10))["dp"]["policy"]
    assert all(torch.equal(ema[k], st1[k]) for k in keys) and dist(ema, live) > 0


def test_ema_start_past_the_budget_warns():
    with pytest.warns(UserWarning, match="never averages"):
        _train(CommonStartConfig(steps=3, batch_size=8, ema_every=10, ema_start=100))


# ---- act_steps -----------------------------------------------------------------------------------------------
def _ctx(dp_cfg: DPConfig, obs_dim=5, act_dim=2):
    from methods.base import MethodContext, TaskSpaces

    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=-np.ones(act_dim, np.float32),
                        act_high=np.ones(act_dim, np.float32), max_episode_steps=50, chunk=4)
    return MethodContext(spaces=spaces, normalizer=_normalizer(obs_dim, act_dim), dp_cfg=dp_cfg)


@pytest.mark.parametrize("act_steps, executed", [(2, 2), (0, 4), (4, 4), (1, 1)])
def test_bc_dp_executes_act_steps_of_its_chunk_and_its_timing_says_so(act_steps, executed):
    from methods.base import ActorState
    from methods.bc_dp import BCDP
    from methods.bc_dp.config import BCDPConfig

    m = BCDP(BCDPConfig(), _ctx(DPConfig(hidden=[16, 16], denoising_steps=3, act_steps=act_steps)))
    out = m.act(np.zeros((3, 5), np.float32), "dp", ActorState.create(0), True)
    assert out.shape == (3, executed, 2) and m.decision_length() == executed
    comps = m.timed_components(batch_size=2)
    assert comps["act"].actions_per_call == executed


def test_modip_dp_actor_executes_act_steps():
    from methods.base import ActorState
    from methods.modip import MODIP
    from methods.modip.config import ModipConfig

    m = MODIP(ModipConfig(), _ctx(DPConfig(hidden=[16, 16], denoising_steps=3, act_steps=2)))
    assert m.act(np.zeros((3, 5), np.float32), "dp", ActorState.create(0), True).shape == (3, 2, 2)
    comps = m.timed_components(batch_size=1)
    assert comps["dp_act"].actions_per_call == 2 and comps["plan"].actions_per_call == m.cfg.planner.replan_every


def test_act_steps_is_validated_against_the_chunk():
    from bench.config.layers import resolve_config
    from methods.bc_dp import BCDP
    from methods.bc_dp.config import BCDPConfig

    assert resolve_config("bc_dp", "demo", 0, {"dp.act_steps": 2}).to_json()["dp"]["act_steps"] == 2
    for bad in (5, -1):
        with pytest.raises(ConfigError, match="dp.act_steps"):
            resolve_config("bc_dp", "demo", 0, {"dp.act_steps": bad})
    with pytest.raises(ConfigError, match="dp.act_steps"):
        resolve_config("bc_dp", "demo", 0, {"dp.act_steps": 3, "dp.chunk": 2})
    with pytest.raises(ConfigError, match="dp.act_steps"):
        BCDP(BCDPConfig(), _ctx(DPConfig(hidden=[16], act_steps=6)))
    # act_steps changes how the DP acts, not its BC training: the common start's cache key leaves it out
    assert "act_steps" in DPConfig.SAMPLING_KEYS


# ---- suite defaults ------------------------------------------------------------------------------------------
def test_dppo_design_is_the_default_on_the_paper_suites_not_on_demo():
    from bench.config.layers import resolve_config

    hop = resolve_config("bc_dp", "hopper-medium", 0, {}).to_json()
    assert {k: hop["dp"][k] for k in ("hidden", "residual", "activation", "time_dim", "layernorm")} == \
        {"hidden": [512, 512, 512], "residual": True, "activation": "relu", "time_dim": 16, "layernorm": False}
    cs = hop["common_start"]
    assert (cs["lr"], cs["lr_schedule"], cs["lr_min"], cs["batch_size"], cs["grad_clip"], cs["ema_every"]) == \
        (1e-3, "cosine", 1e-4, 128, 0.0, 10)
    assert cs["ema_start"] == 19 * 7_762 and cs["lr_warmup"] == 7_762  # DPPO's epochs in hopper-medium-v2 steps
    assert hop["dp"]["lr"] == DPConfig().lr and hop["dp"]["grad_clip"] == 1.0  # fine-tuning values unchanged
    assert hop["variant"] == ""  # defaults are not a variant
    for m in ("dppo", "modip"):  # every DP method gets the same DP and common start (one cached common start)
        other = resolve_config(m, "hopper-medium", 0, {}).to_json()
        assert other["dp"] == hop["dp"] and other["common_start"] == cs
    assert "dp" not in resolve_config("bc_gauss", "hopper-medium", 0, {}).to_json()  # no dp section leaks to non-DP methods

    demo = resolve_config("bc_dp", "demo", 0, {}).to_json()
    want = dict(DPConfig().model_dump(), eval_sampler=demo["eval"]["sampler"])
    assert demo["dp"] == want and demo["dp"]["hidden"] == [256, 256, 256] and not demo["dp"]["residual"]
    assert demo["common_start"] == CommonStartConfig().model_dump()

    kit = resolve_config("bc_dp", "kitchen-complete", 0, {}).to_json()
    assert kit["dp"]["cond_hidden"] == [128, 32] and kit["dp"]["activation"] == "mish" and kit["dp"]["residual"]
    lift = resolve_config("bc_dp", "lift-ph", 0, {}).to_json()
    assert lift["common_start"]["lr"] == 1e-4 and lift["common_start"]["batch_size"] == 256


def test_user_overrides_win_over_the_suite_defaults():
    from bench.config.layers import resolve_config

    cfg = resolve_config("bc_dp", "hopper-medium", 0, {"dp.residual": False, "dp.hidden": [256, 256],
                                                       "dp.activation": "mish", "common_start.batch_size": 64,
                                                       "common_start.ema_start": 500, "common_start.lr": 3e-4}).to_json()
    assert (cfg["dp"]["residual"], cfg["dp"]["hidden"], cfg["dp"]["activation"]) == (False, [256, 256], "mish")
    cs = cfg["common_start"]
    assert (cs["batch_size"], cs["ema_start"], cs["lr"], cs["ema_every"]) == (64, 500, 3e-4, 10)
    # a width list that the residual default cannot take fails at once, naming the key to change
    with pytest.raises(ConfigError, match="dp.residual"):
        resolve_config("bc_dp", "hopper-medium", 0, {"dp.hidden": [32, 32]})
