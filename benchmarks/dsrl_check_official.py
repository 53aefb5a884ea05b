"""One-update check of the DSRL port against the official code: the SB3 fork's DSRL-NA `train` on DPPO's DDIM.

Why: a learning curve is too noisy to show that two implementations agree; the same computation on the same
inputs is not. Official side: `stable_baselines3/dsrl/dsrl.py` (`DSRL.train`, `update_noise_critic`) of
ajwagen/stable-baselines3-dsrl at 10e5d311 (the commit that ajwagen/dsrl pins), built as train_dsrl.py builds it
(MlpPolicy, net_arch pi = qf = [128] * 3, Tanh, post_linear_modules [LayerNorm], 2 critics, lr 3e-4, τ 0.005,
γ 0.99, ent_coef auto, target entropy 0, backup min), and as its diffusion policy DPPO's DDIM
(irom-princeton/dppo at cc7234a, model/diffusion/diffusion.py: `DiffusionModel` with use_ddim, ddim_steps 5,
its `p_mean_var` stepped from x = w with zero noise, as the fork's controllable-noise `forward` does). Shapes of
cfg/gym/dsrl_hopper.yaml: obs 11, act 3, act_steps = horizon_steps 4, 20 denoising steps, the DP DPPO's hopper
DiffusionMLP (residual ReLU [512] * 3).

Ours: methods/dsrl (`DsrlLearner.gradient_step`, `distill_step`, `DSRL.chain`), with the official weights copied
in (the critic target perturbed away from the critic, so that the check can tell Q from Q̄), identity normalisers,
and the same batch. The Gaussian draws are shared: the official actor's Normal.rsample and the distillation's
randn, and ours, take the same pre-drawn tensors in the same order. One gradient step (utd 1) and one
distillation step (noise_critic_grad_steps 1). Printed: the DP chain's max difference on 256 (s, w); each loss
and α in both; the max abs difference of every network's parameters after the update. Our actor uses SB3's
log-prob correction, log(1 - tanh² + 1e-6) (`dsrl.tanh_eps`, the default); the NA check is repeated with the
exact tanh Jacobian (`dsrl.tanh_eps=0`), to show what that one formula moves. DSRL-SAC is checked the same way
against the fork's `stable_baselines3/sac/sac.py` (`SAC.train`, which train_dsrl.py runs for dsrl_sac, on an
action space of ±action_magnitude 1.5; SB3 stores the noise scaled to [-1, 1], ours as drawn).

Run it with both sources (never committed) on the path, e.g.
    git --git-dir=<dppo clone>/.git archive cc7234a model util | tar -x -C third_party/dppo
    git --git-dir=<sb3-dsrl clone>/.git archive 10e5d311 stable_baselines3 | tar -x -C third_party/sb3
    pip install --target third_party/pydeps einops
    PYTHONPATH=third_party/pydeps .venv/bin/python benchmarks/dsrl_check_official.py \
        --dppo third_party/dppo --sb3 third_party/sb3
Last line: `dsrl port vs official: max abs diff X (chain), Y (losses), Z (parameters); DSRL-SAC ...`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.idql_check_official import copy_params

OBS, ACT, TA, T, HIDDEN = 11, 3, 4, 20, 128
NOISE = TA * ACT


def sb3_layers(net: torch.nn.Sequential) -> tuple[list[torch.nn.Linear], list[torch.nn.LayerNorm]]:
    return ([m for m in net if isinstance(m, torch.nn.Linear)], [m for m in net if isinstance(m, torch.nn.LayerNorm)])


def copy_critic(official, ours_q) -> None:
    """SB3's ContinuousCritic (q_networks: [Linear, LayerNorm, Tanh] x 3, Linear) into our EnsembleMLP with one
    layer norm per member."""
    ens = ours_q.net
    with torch.no_grad():
        for k, net in enumerate(official.q_networks):
            lins, norms = sb3_layers(net)
            for i, layer in enumerate(ens.layers):
                layer.weight[k].copy_(lins[i].weight.T)
                layer.bias[k, 0].copy_(lins[i].bias)
                ens.norms[i].weight[k, 0].copy_(norms[i].weight)
                ens.norms[i].bias[k, 0].copy_(norms[i].bias)
            ens.out.weight[k].copy_(lins[-1].weight.T)
            ens.out.bias[k, 0].copy_(lins[-1].bias)


def critic_diff(official, ours_q) -> float:
    ens, out = ours_q.net, 0.0
    for k, net in enumerate(official.q_networks):
        lins, norms = sb3_layers(net)
        pairs = [(lins[i].weight.T, layer.weight[k]) for i, layer in enumerate(ens.layers)]
        pairs += [(lins[i].bias, layer.bias[k, 0]) for i, layer in enumerate(ens.layers)]
        pairs += [(norms[i].weight, ens.norms[i].weight[k, 0]) for i in range(len(norms))]
        pairs += [(norms[i].bias, ens.norms[i].bias[k, 0]) for i in range(len(norms))]
        pairs += [(lins[-1].weight.T, ens.out.weight[k]), (lins[-1].bias, ens.out.bias[k, 0])]
        out = max(out, max(float((a - b).detach().abs().max()) for a, b in pairs))
    return out


def actor_pairs(official_actor, ours_actor):
    """(official tensor, our tensor) for every actor parameter: the trunk, then mu and log_std stacked as our
    one head's rows."""
    trunk = [p for p in official_actor.latent_pi.parameters()]
    mine = list(ours_actor.net.parameters())
    pairs = list(zip(trunk, mine[:-2], strict=True))
    w = torch.cat([official_actor.mu.weight, official_actor.log_std.weight])
    b = torch.cat([official_actor.mu.bias, official_actor.log_std.bias])
    return [*pairs, (w, mine[-2]), (b, mine[-1])]


class Draws:
    """Pre-drawn standard normals handed out in order, each reshaped to what the caller asks for."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = list(tensors)

    def take(self, shape) -> torch.Tensor:
        x = self.tensors.pop(0)
        assert x.numel() == int(np.prod(shape)), (x.shape, shape)
        return x.reshape(shape).clone()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dppo", default=str(ROOT / "third_party" / "dppo"), help="DPPO's source root")
    ap.add_argument("--sb3", default=str(ROOT / "third_party" / "sb3"), help="the SB3 fork's source root")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.dppo).resolve()))
    sys.path.insert(0, str(Path(args.sb3).resolve()))
    import gymnasium as gym
    from model.diffusion.diffusion import DiffusionModel
    from model.diffusion.mlp_diffusion import DiffusionMLP
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.type_aliases import ReplayBufferSamples
    from stable_baselines3.dsrl.dsrl import DSRL as OfficialDSRL
    from stable_baselines3.sac.sac import SAC as OfficialSAC

    from bench.config.parse import parse_section
    from bench.config.run import RunConfig
    from bench.runner.assemble import assemble
    from methods.common.dp_config import DPConfig
    from methods.dsrl import DSRL
    from methods.dsrl.config import DsrlConfig

    torch.manual_seed(0)
    b = args.batch
    # ---- the DP: DPPO's DDIM and ours on the same weights --------------------------------------------------
    dppo = DiffusionModel(network=DiffusionMLP(horizon_steps=TA, action_dim=ACT, cond_dim=OBS, time_dim=16,
                                               mlp_dims=[512] * 3, activation_type="ReLU", residual_style=True),
                          horizon_steps=TA, obs_dim=OBS, action_dim=ACT, denoising_steps=T, device="cpu",
                          use_ddim=True, ddim_steps=5, denoised_clip_value=1.0, predict_epsilon=True).eval()

    @torch.no_grad()
    def official_chain(obs: torch.Tensor, w: torch.Tensor, return_numpy: bool = False) -> torch.Tensor:
        """DPPO's DDIM from x = w (the fork's controllable noise), eta 0: x <- the mean of each step."""
        x, cond = w.reshape(-1, TA, ACT).clone(), {"state": obs[:, None]}
        for i, t in enumerate(dppo.ddim_t):
            tb = torch.full((x.shape[0],), int(t), dtype=torch.long)
            ib = torch.full((x.shape[0],), i, dtype=torch.long)
            x, _ = dppo.p_mean_var(x=x, t=tb, cond=cond, index=ib)
        return x

    dp_cfg = DPConfig(hidden=[512] * 3, residual=True, activation="relu", time_dim=16, denoising_steps=T)

    def make_ours(variant: str = "na") -> DSRL:
        """Our DSRL (the config's defaults at utd 1, one distillation step) on DPPO's DP weights, built on
        hopper-medium's spaces (obs 11, act 3, chunk TA 4, 1000 steps, γ 0.99) with identity normalisers. The
        config is this check's, not the suite's defaults: the section and the DP as the official run sets them."""
        section = {"utd": 1, "noise_critic_grad_steps": 1, "variant": variant}
        cfg = RunConfig(method="dsrl", task="hopper-medium", seed=0, dp=dp_cfg,
                        section=parse_section(DsrlConfig, section, "dsrl."))
        m = assemble(cfg, data="synthetic").method
        assert (m.spaces.obs_dim, m.spaces.act_dim, m.spaces.chunk) == (OBS, ACT, TA)
        copy_params(dppo.network, m.frozen_dp.denoiser)
        return m

    ours = make_ours()
    g = torch.Generator().manual_seed(1)
    s_probe, w_probe = torch.randn(b, OBS, generator=g), torch.randn(b, TA, ACT, generator=g)
    chain_diff = float((official_chain(s_probe, w_probe) - ours.chain(s_probe, w_probe)).abs().max())
    print(f"DDIM timesteps: official {[int(t) for t in dppo.ddim_t]}, ours {ours.timesteps}")
    print(f"DP chain DP(s, w) on {b} pairs: max abs diff {chain_diff:.2e}")

    chain_fn = (official_chain, make_ours, {"na": OfficialDSRL, "sac": OfficialSAC}, configure,
                ReplayBufferSamples, gym)
    print("\nDSRL-NA: the fork's DSRL.train and ours")
    loss_diff, param_diff = learner_check(chain_fn, b, tanh_eps=1e-6)
    print("\nDSRL-NA again, with the exact tanh Jacobian in our actor (dsrl.tanh_eps=0) instead of SB3's form:")
    loss_exact, param_exact = learner_check(chain_fn, b, tanh_eps=0.0)
    print("\nDSRL-SAC: the fork's SAC.train on the noise (action space ±action_magnitude 1.5) and ours")
    loss_sac, param_sac = learner_check(chain_fn, b, tanh_eps=1e-6, variant="sac")
    print(f"dsrl port vs official: max abs diff {chain_diff:.2e} (chain), {loss_diff:.2e} (losses), "
          f"{param_diff:.2e} (parameters); DSRL-SAC {loss_sac:.2e} (losses), {param_sac:.2e} (parameters); "
          f"NA with the exact tanh Jacobian {loss_exact:.2e} (losses), {param_exact:.2e} (parameters)")


def learner_check(chain_fn, b: int, tanh_eps: float, variant: str = "na") -> tuple[float, float]:
    """One train call of the fork's DSRL-NA (or SAC on the noise, variant sac) and one update of ours from the
    same weights, batch and draws; prints the losses and parameter differences and returns their maxima."""
    official_chain, make_ours, official_cls, configure, ReplayBufferSamples, gym = chain_fn
    ours = make_ours(variant)
    bound = 1.0 if variant == "na" else 1.5
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    class ChunkEnv(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        action_space = gym.spaces.Box(-bound, bound, (NOISE,), np.float32)

        def reset(self, seed=None, options=None):
            return np.zeros(OBS, np.float32), {}

        def step(self, action):
            return np.zeros(OBS, np.float32), 0.0, False, False, {}

    policy_kwargs = {"net_arch": {"pi": [HIDDEN] * 3, "qf": [HIDDEN] * 3}, "activation_fn": torch.nn.Tanh,
                     "log_std_init": 0.0, "post_linear_modules": [torch.nn.LayerNorm], "n_critics": 2}
    kwargs = {"learning_rate": 3e-4, "buffer_size": 1000, "learning_starts": 1, "batch_size": b, "tau": 0.005,
              "gamma": 0.99, "train_freq": 2, "gradient_steps": 1, "action_noise": None, "ent_coef": "auto",
              "target_update_interval": 1, "target_entropy": 0.0, "use_sde": False, "policy_kwargs": policy_kwargs,
              "device": "cpu", "seed": 0}
    if variant == "na":
        kwargs.update(diffusion_policy=official_chain, diffusion_act_dim=(TA, ACT), noise_critic_grad_steps=1,
                      critic_backup_combine_type="min")
    official = official_cls[variant]("MlpPolicy", ChunkEnv(), **kwargs)
    official.set_logger(configure(None, []))
    with torch.no_grad():  # a target that differs from the critic, and α away from 1 (log α 0 zeroes α's loss)
        for p in official.critic_target.parameters():
            p.add_(0.01 * torch.randn_like(p))
        official.log_ent_coef.fill_(float(np.log(0.3)))
    lrn = ours.learner
    with torch.no_grad():
        lrn.temperature.log_alpha.fill_(float(np.log(0.3)))
    lrn.actor.tanh_eps = tanh_eps
    with torch.no_grad():
        for a, m in actor_pairs(official.actor, lrn.actor):
            m.copy_(a)
    copy_critic(official.critic, lrn.q)
    copy_critic(official.critic_target, lrn.q_target)
    if variant == "na":
        copy_critic(official.critic_noise, lrn.qw)

    obs, next_obs = torch.randn(b, OBS, generator=g), torch.randn(b, OBS, generator=g)
    # NA: the executed denoised chunks in the buffer; SAC: the noise, which SB3 stores scaled to [-1, 1] and ours
    # stores as drawn (±1.5)
    actions = torch.rand(b, NOISE, generator=g) * 2 - 1
    rewards = torch.randn(b, generator=g) * 3.0
    dones = (torch.rand(b, generator=g) < 0.1).float()
    draws = [torch.randn(b, NOISE, generator=g), torch.randn(b, NOISE, generator=g),
             torch.randn(b, TA, ACT, generator=g)]  # π^W at s, π^W at s', the distillation's w

    # official: one train call, its buffer returning our batch, its Gaussian draws ours
    samples = ReplayBufferSamples(observations=obs, actions=actions, next_observations=next_obs,
                                  dones=dones[:, None], rewards=rewards[:, None])
    official.replay_buffer.sample = lambda *a, **k: samples
    shared = Draws(draws)
    normal_rsample, randn = torch.distributions.Normal.rsample, torch.randn
    torch.distributions.Normal.rsample = lambda self, sample_shape=(): (
        self.loc + self.scale * shared.take(self.loc.shape))
    torch.randn = lambda *size, **k: shared.take(size[0] if len(size) == 1 and not isinstance(size[0], int)
                                                 else size)
    try:
        official.train(gradient_steps=1, batch_size=b)
        # ours: one gradient step and one distillation step on the same batch and draws
        shared = Draws(draws)
        batch = {"obs": obs, "next_obs": next_obs, "x": actions * bound, "reward": rewards,
                 "terminal": dones.bool(), "discount": torch.full((b,), 0.99)}
        m = lrn.gradient_step(batch, ours.steer)
        distill = lrn.distill_step(obs, shared.take((b, NOISE)), ours.steer) if variant == "na" else None
    finally:
        torch.distributions.Normal.rsample, torch.randn = normal_rsample, randn
    logged = official.logger.name_to_value
    rows = [("Q loss" if variant == "sac" else "Q^A loss", logged["train/critic_loss"], m["loss/critic"]),
            ("actor loss", logged["train/actor_loss"], m["loss/actor"]),
            *([("Q^W loss", logged["train/noise_critic_loss"], distill)] if variant == "na" else []),
            ("alpha loss", logged["train/ent_coef_loss"], m["loss/alpha"]),
            ("alpha", logged["train/ent_coef"], m["train/alpha"])]
    print(f"{'':12s} {'official':>14s} {'ours':>14s} {'abs diff':>10s}")
    for name, a, o in rows:
        print(f"{name:12s} {a:14.8f} {o:14.8f} {abs(a - o):10.2e}")
    q_name = "Q^A" if variant == "na" else "Q"
    params = {"actor": max(float((a - o).detach().abs().max()) for a, o in actor_pairs(official.actor, lrn.actor)),
              q_name: critic_diff(official.critic, lrn.q), f"{q_name} target": critic_diff(official.critic_target, lrn.q_target),
              **({"Q^W": critic_diff(official.critic_noise, lrn.qw)} if variant == "na" else {}),
              "log alpha": float((official.log_ent_coef.detach().squeeze() - lrn.temperature.log_alpha.detach()).abs())}
    for name, d in params.items():
        print(f"parameters after the update, {name:10s}: max abs diff {d:.2e}")
    loss_diff = max(abs(a - o) for _, a, o in rows)
    return loss_diff, max(params.values())


if __name__ == "__main__":
    main()
