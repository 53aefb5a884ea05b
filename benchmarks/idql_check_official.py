"""One-update check of the IDQL port against DPPO's PyTorch IDQL (irom-princeton/dppo at cc7234a).

Why: a learning curve is too noisy to show that two implementations agree; the same computation on the same
inputs is not. Both are built at the shapes of DPPO's hopper config (cfg/gym/finetune/hopper-v2/
ft_idql_diffusion_mlp.yaml: obs 11, act 3, horizon_steps = act_steps = 4, 20 denoising steps, the actor a
residual ReLU MLP [512]*3, the critics [256]*3 Mish), with identity normalisers, and the official weights
(targets perturbed away from the critic, so that the check can tell Q from Q̄) are copied into ours. Then one
update, in the order of the official trainer (agent/finetune/train_idql_diffusion_agent.py `run`), on the
same batch, with the actor's denoising step t and noise fixed in both (torch.randint / randn patched):
V loss -> V step, Q loss -> Q step, the target update (critic_tau 0.001), the actor's BC loss -> its step
(AdamW lrs 1e-3 / 1e-3 / 1e-4, weight decay 0, no clipping: the config's values past the warm-up). Printed:
each loss in both, and the max abs difference of every network's parameters after the update. Then the
selection at eval: the argmax of min Q̄ over the same 20 candidate chunks, in both.

Run it with DPPO's source (never committed) at --official and einops importable, e.g.
    git --git-dir=<a dppo clone>/.git archive cc7234a model util | tar -x -C third_party/dppo
    pip install --target third_party/pydeps einops
    PYTHONPATH=third_party/pydeps .venv/bin/python benchmarks/idql_check_official.py --official third_party/dppo
Last line: `idql port vs official: max abs diff X (losses), Y (parameters), selection equal: True`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBS, ACT, TA, T = 11, 3, 4, 20


def copy_params(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy parameters in order (both networks list them in the same order), shape by shape."""
    sp, dp = list(src.parameters()), list(dst.parameters())
    assert len(sp) == len(dp), (len(sp), len(dp))
    with torch.no_grad():
        for a, b in zip(sp, dp, strict=True):
            assert a.shape == b.shape, (a.shape, b.shape)
            b.copy_(a)


def copy_q(official_q, ours_ensemble) -> None:
    """DPPO's CriticObsAct (Q1, Q2: plain MLPs of nn.Linear) into our batched EnsembleMLP (K, in, out)."""
    nets = [official_q.Q1, official_q.Q2]
    with torch.no_grad():
        for k, net in enumerate(nets):
            lin = [m.linear_1 for m in net.moduleList]
            for i, layer in enumerate(ours_ensemble.layers):
                layer.weight[k].copy_(lin[i].weight.T)
                layer.bias[k, 0].copy_(lin[i].bias)
            ours_ensemble.out.weight[k].copy_(lin[-1].weight.T)
            ours_ensemble.out.bias[k, 0].copy_(lin[-1].bias)


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=str(ROOT / "third_party" / "dppo"), help="DPPO's source root")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.official).resolve()))
    from model.common.critic import CriticObs, CriticObsAct
    from model.diffusion.diffusion_idql import IDQLDiffusion
    from model.diffusion.mlp_diffusion import DiffusionMLP

    from bench.config.parse import parse_section
    from bench.config.run import RunConfig
    from bench.runner.assemble import assemble
    from methods.common.dp_config import DPConfig
    from methods.idql.config import IdqlConfig

    torch.manual_seed(0)
    official = IDQLDiffusion(
        actor=DiffusionMLP(horizon_steps=TA, action_dim=ACT, cond_dim=OBS, time_dim=16, mlp_dims=[512] * 3,
                           activation_type="ReLU", residual_style=True),
        critic_q=CriticObsAct(cond_dim=OBS, mlp_dims=[256] * 3, action_dim=ACT, action_steps=TA,
                              activation_type="Mish", residual_style=True),
        critic_v=CriticObs(cond_dim=OBS, mlp_dims=[256] * 3, activation_type="Mish", residual_style=True),
        horizon_steps=TA, obs_dim=OBS, action_dim=ACT, denoising_steps=T, device="cpu",
        min_sampling_denoising_std=0.1, randn_clip_value=3)
    with torch.no_grad():  # a target that differs from the critic
        official.target_q.load_state_dict(official.critic_q.state_dict())
        for p in official.target_q.parameters():
            p.add_(0.01 * torch.randn_like(p))

    # Ours on hopper-medium's spaces (obs 11, act 3, chunk TA 4, 1000 steps, γ 0.99), identity normalisers; the
    # config is this check's (IDQL's defaults and DPPO's DP), not the suite's defaults.
    dp_cfg = DPConfig(hidden=[512] * 3, residual=True, activation="relu", time_dim=16, denoising_steps=T)
    cfg = RunConfig(method="idql", task="hopper-medium", seed=0, dp=dp_cfg,
                    section=parse_section(IdqlConfig, {}, "idql."))
    ours = assemble(cfg, data="synthetic").method
    assert (ours.spaces.obs_dim, ours.spaces.act_dim, ours.spaces.chunk) == (OBS, ACT, TA)
    ours._set_actor_hparams()
    copy_params(official.actor, ours.dp.policy.denoiser)
    copy_params(official.critic_v, ours.critics.v)
    copy_q(official.critic_q, ours.critics.q.net)
    copy_q(official.target_q, ours.critics.q_target.net)

    g = torch.Generator().manual_seed(1)
    b = args.batch
    obs, next_obs = torch.randn(b, OBS, generator=g), torch.randn(b, OBS, generator=g)
    actions = torch.rand(b, TA, ACT, generator=g) * 2 - 1
    rewards = torch.randn(b, generator=g) * 0.03  # scaled by 0.01, as the trainer stores them
    terminated = (torch.rand(b, generator=g) < 0.1).float()
    t_fixed = torch.randint(0, T, (b,), generator=g)
    noise_fixed = torch.randn(b, TA, ACT, generator=g)

    # ---- the official update (train_idql_diffusion_agent.py, one batch) ----
    opt_v = torch.optim.AdamW(official.critic_v.parameters(), lr=1e-3, weight_decay=0)
    opt_q = torch.optim.AdamW(official.critic_q.parameters(), lr=1e-3, weight_decay=0)
    opt_a = torch.optim.AdamW(official.actor.parameters(), lr=1e-4, weight_decay=0)
    cond, ncond = {"state": obs[:, None]}, {"state": next_obs[:, None]}
    lv = official.loss_critic_v(cond, actions)
    opt_v.zero_grad()
    lv.backward()
    opt_v.step()
    lq = official.loss_critic_q(cond, ncond, actions, rewards, terminated, 0.99)
    opt_q.zero_grad()
    lq.backward()
    opt_q.step()
    official.update_target_critic(0.001)
    randint, randn, randn_like = torch.randint, torch.randn, torch.randn_like
    torch.randint = lambda *a, **k: t_fixed.clone()
    torch.randn_like = lambda x, **k: noise_fixed.clone()
    torch.randn = lambda *a, **k: noise_fixed.clone()
    try:
        la = official.loss(actions, cond)
        opt_a.zero_grad()
        la.backward()
        opt_a.step()
        # ---- ours: the same steps (IDQL's update on this batch) ----
        m = ours.critics.update(obs, actions, rewards, next_obs, terminated.bool(),
                                torch.full((b,), 0.99))
        la_ours = ours.dp.train_step(actions, obs, update_ema=False, grad_clip=ours.cfg.actor_grad_clip)
    finally:
        torch.randint, torch.randn, torch.randn_like = randint, randn, randn_like

    # DPPO's loss_critic_q sums the two members' means; ours sums the members' means: the same quantity
    rows = [("V loss", lv.item(), m["loss/critic_v"]), ("Q loss", lq.item(), m["loss/critic_q"]),
            ("actor loss", la.item(), la_ours)]
    print(f"{'':12s} {'official':>14s} {'ours':>14s} {'abs diff':>10s}")
    for name, a, o in rows:
        print(f"{name:12s} {a:14.8f} {o:14.8f} {abs(a - o):10.2e}")
    diffs = {"V": max_diff(official.critic_v, ours.critics.v)}
    q_ours = [torch.cat([layer.weight[k].T.flatten() for layer in [*ours.critics.q.net.layers, ours.critics.q.net.out]])
              for k in range(2)]
    q_off = [torch.cat([mm.linear_1.weight.flatten() for mm in net.moduleList])
             for net in (official.critic_q.Q1, official.critic_q.Q2)]
    diffs["Q"] = max(float((a - o).abs().max()) for a, o in zip(q_off, q_ours, strict=True))
    qt_ours = [torch.cat([layer.weight[k].T.flatten() for layer in [*ours.critics.q_target.net.layers,
                                                                    ours.critics.q_target.net.out]]) for k in range(2)]
    qt_off = [torch.cat([mm.linear_1.weight.flatten() for mm in net.moduleList])
              for net in (official.target_q.Q1, official.target_q.Q2)]
    diffs["Q target"] = max(float((a - o).abs().max()) for a, o in zip(qt_off, qt_ours, strict=True))
    diffs["actor"] = max_diff(official.actor, ours.dp.policy.denoiser)
    for k, v in diffs.items():
        print(f"after the update, max abs parameter diff, {k}: {v:.2e}")

    # ---- selection at eval: the argmax of min Q̄ over the same candidates ----
    s1 = obs[:8]
    cands = torch.rand(20 * 8, TA, ACT, generator=g) * 2 - 1
    q1, q2 = official.target_q({"state": s1.repeat(20, 1)[:, None]}, cands)
    pick_off = torch.min(q1, q2).view(20, 8).argmax(0)
    pick_ours = ours.critics.target_min(s1.repeat(20, 1), cands).view(20, 8).argmax(0)
    same = bool(torch.equal(pick_off, pick_ours))
    print(f"eval selection over 20 shared candidates at 8 states: official {pick_off.tolist()}, ours "
          f"{pick_ours.tolist()}")
    loss_diff = max(abs(a - o) for _, a, o in rows)
    print(f"idql port vs official: max abs diff {loss_diff:.2e} (losses), {max(diffs.values()):.2e} (parameters), "
          f"selection equal: {same}")


if __name__ == "__main__":
    main()
