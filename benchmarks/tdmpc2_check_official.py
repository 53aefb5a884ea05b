"""Numerical check of the TD-MPC2 port against the official agent (nicklashansen/tdmpc2 at e9f5932).

Why: a learning curve is too noisy to show that two implementations agree; the same computation on the same
inputs is not. Both agents are built with the same small shapes (episodic mode on, dropout 0 so that
nothing random is left in the losses), the official weights (perturbed away from the zero-init layers) are
copied into ours, then:
  * update: the same batch, with the policy noise fixed at a constant in both (torch.randn / randn_like
    patched), 3 updates in a row: every loss and gradient norm, then every parameter and target parameter;
  * plan: the official `_plan` runs with its own noise, recorded, and ours gets the same noise: the action
    and the warm-start mean, at t0 and for two warm-started steps.
Run it with a Python that has the official code's needs (tensordict 0.13, omegaconf, hydra-core) and this
project on its path; the official source sits in the ignored third_party/tdmpc2 (never committed):
    /path/to/official-venv/bin/python benchmarks/tdmpc2_check_official.py
Last line: `tdmpc2 port vs official: max abs diff X (update), Y (plan)`; float32 round-off is ~1e-6.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "third_party" / "tdmpc2" / "tdmpc2"


def build_official(obs_dim, act_dim, episode_length, overrides):
    os.environ["LAZY_LEGACY_OP"] = "0"
    os.environ["TORCHDYNAMO_INLINE_INBUILT_NN_MODULES"] = "1"
    import hydra.utils
    import torch
    from omegaconf import OmegaConf

    sys.path.insert(0, str(SRC))
    hydra.utils.get_original_cwd = os.getcwd  # parse_cfg needs a Hydra run otherwise
    import common.parser as parser_mod
    import common.scale as scale_mod
    import tdmpc2 as tdmpc2_mod

    cfg = OmegaConf.load(SRC / "config.yaml")
    del cfg["defaults"]
    cfg.task, cfg.obs, cfg.compile, cfg.model_size = "cheetah-run", "state", False, 1
    cfg.enable_wandb = cfg.save_video = cfg.save_agent = False
    cfg = parser_mod.parse_cfg(cfg)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.obs_shape, cfg.action_dim, cfg.episode_length = {"state": (obs_dim,)}, act_dim, episode_length

    class _CpuTorch(types.ModuleType):  # the official code hard-codes cuda:0 while it builds the agent
        def __getattr__(self, name):
            return getattr(torch, name)

        def device(self, *a, **k):
            return torch.device("cpu")

    proxy = _CpuTorch("torch")
    tdmpc2_mod.torch = scale_mod.torch = proxy
    try:
        agent = tdmpc2_mod.TDMPC2(cfg)
    finally:
        tdmpc2_mod.torch = scale_mod.torch = torch
    for opt in (agent.optim, agent.pi_optim):
        for g in opt.param_groups:
            g["capturable"] = False  # Adam refuses capturable on the CPU
    return agent, cfg


def main() -> int:
    import torch

    sys.path.insert(0, str(ROOT))
    from bench.config.parse import parse_section
    from bench.config.run import RunConfig
    from bench.runner.assemble import assemble
    from methods.tdmpc2.config import TDMPC2Config

    torch.set_num_threads(1)
    O, A, L, H, B = 5, 2, 1000, 3, 32
    small = {"enc_dim": 64, "mlp_dim": 64, "latent_dim": 32, "num_q": 2, "batch_size": B, "dropout": 0.0,
             "episodic": True}
    off, ocfg = build_official(O, A, L, small)
    # Ours with the official shapes (obs O, act A in [-1, 1]) on a task of L-step episodes (hopper-medium), with
    # identity normalisers; the config is this check's (size 1 and `small`), not the suite's defaults.
    cfg = RunConfig(method="tdmpc2", task="hopper-medium", seed=0,
                    section=parse_section(TDMPC2Config, dict(model_size=1, **small), "tdmpc2."))
    ours = assemble(cfg, data="synthetic", obs_dim=O, act_dim=A).method
    assert ours.spaces.max_episode_steps == L
    om, m = off.model, ours.model
    pairs = [(om._encoder["state"], m.encoder), (om._dynamics, m.dynamics), (om._reward, m.reward_head),
             (om._termination, m.termination_head), (om._pi, m.pi_head)]

    def q_layout(td):  # official (K, out, in) Linear weights -> our (K, in, out) batched-matmul layout
        out = {}
        for i in range(3):
            out[f"w{i}"], out[f"b{i}"] = td[str(i), "weight"].transpose(1, 2), td[str(i), "bias"].unsqueeze(1)
            if i < 2:
                out[f"g{i}"] = td[str(i), "ln", "weight"].unsqueeze(1)
                out[f"h{i}"] = td[str(i), "ln", "bias"].unsqueeze(1)
        return out

    torch.manual_seed(1)
    with torch.no_grad():
        for p in om.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        om._target_Qs_params.data.copy_(om._Qs.params.data)
        om._target_Qs_params.data.apply_(lambda t: t.add_(torch.randn_like(t) * 0.01))
        for a, b in pairs:
            for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
                pb.copy_(pa)
        for k, v in q_layout(om._Qs.params).items():
            getattr(m.qs, k).copy_(v)
        for k, v in q_layout(om._target_Qs_params).items():
            getattr(m, "target_" + k).copy_(v)

    def param_diff():
        d = max((pa - pb).abs().max().item() for a, b in pairs
                for pa, pb in zip(a.state_dict().values(), b.state_dict().values()))
        d = max([d] + [(getattr(m.qs, k) - v).abs().max().item() for k, v in q_layout(om._Qs.params).items()])
        return max([d] + [(getattr(m, "target_" + k) - v).abs().max().item()
                          for k, v in q_layout(om._target_Qs_params).items()])

    # ---- update ----
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(H + 1, B, O, generator=g)
    action = torch.rand(H, B, A, generator=g) * 2 - 1
    reward = torch.rand(H, B, 1, generator=g) * 3
    term = (torch.rand(H, B, 1, generator=g) < 0.2).float()

    class Buf:
        def sample(self):
            return obs, action, reward, term, None

    real_randn_like, real_randn = torch.randn_like, torch.randn

    def const_randn(*shape, **kw):
        shape = [s for s in shape if not isinstance(s, torch.Generator)]
        return torch.full(tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape, 0.3,
                          **{k: v for k, v in kw.items() if k in ("device", "dtype")})

    torch.randn_like = lambda x, *a, **k: torch.full_like(x, 0.3)
    torch.randn = const_randn
    worst_update = 0.0
    try:
        for it in range(3):
            io = off.update(Buf())
            iu = ours._step({"obs": obs[:-1].transpose(0, 1), "next_obs": obs[1:].transpose(0, 1),
                             "action": action.transpose(0, 1), "reward": reward.squeeze(-1).T,
                             "terminal": term.squeeze(-1).T.bool()})
            for ko, ku in [("consistency_loss", "loss/consistency"), ("reward_loss", "loss/reward"),
                           ("value_loss", "loss/value"), ("termination_loss", "loss/termination"),
                           ("total_loss", "loss/total"), ("pi_loss", "loss/pi"), ("grad_norm", "grad_norm"),
                           ("pi_grad_norm", "pi_grad_norm")]:
                print(f"  update {it} {ko:17s} official {float(io[ko]):.6f}  ours {iu[ku]:.6f}")
                worst_update = max(worst_update, abs(float(io[ko]) - iu[ku]))
            worst_update = max(worst_update, param_diff())
            print(f"  update {it}: max abs parameter diff {param_diff():.2e}")
    finally:
        torch.randn_like, torch.randn = real_randn_like, real_randn

    # ---- the Q scale of the policy loss (the update above keeps it at its floor of 1) ----
    from methods.tdmpc2.update import RunningScale

    off.scale.value.fill_(1.0)
    ours_scale = RunningScale(ocfg.tau)
    for i in range(5):
        q = real_randn(B, 1) * (3.0 + i) + 10.0
        off.scale.update(q)
        ours_scale.update(q)
    d = abs(off.scale.value.item() - ours_scale.value.item())
    print(f"  running Q scale: official {off.scale.value.item():.6f}  ours {ours_scale.value.item():.6f}")
    worst_update = max(worst_update, d)

    # ---- plan ----
    import common.math as omath

    I, N, E, P = 3, 64, 8, 4
    ocfg.iterations, ocfg.num_samples, ocfg.num_elites, ocfg.num_pi_trajs = I, N, E, P
    pc = ours.cfg.planner
    pc.iterations, pc.num_samples, pc.num_elites, pc.num_pi_trajs = I, N, E, P
    rec, gum = [], []

    def rec_randn_like(x, *a, **k):
        rec.append(real_randn_like(x, *a, **k))
        return rec[-1].clone()

    def rec_randn(*a, **k):
        rec.append(real_randn(*a, **k))
        return rec[-1].clone()

    def gumbel_sample(p, temperature=1.0, dim=0):  # the official sampler, with its Gumbel noise recorded
        gum.append(-torch.empty_like(p).exponential_().log())
        return ((p.log() + gum[-1]) / temperature).softmax(dim).argmax(-1)

    real_gumbel = omath.gumbel_softmax_sample
    omath.gumbel_softmax_sample = gumbel_sample
    torch.manual_seed(5)
    prev, worst_plan = torch.zeros(H, 1, A), 0.0
    try:
        for call, t0 in enumerate([True, False, False]):
            ob = real_randn(O)
            rec.clear()
            gum.clear()
            torch.randn_like, torch.randn = rec_randn_like, rec_randn
            try:
                a_off = off._plan(ob[None], t0=t0, eval_mode=False)
            finally:
                torch.randn_like, torch.randn = real_randn_like, real_randn
            # the official draws: H pi steps, then per iteration the samples and the terminal pi, then explore
            rest = rec[H:]
            noise = {"pi": torch.stack(rec[:H]), "terminal": torch.stack([rest[2 * i + 1] for i in range(I)]),
                     "sample": torch.stack([rest[2 * i] for i in range(I)]).unsqueeze(2),
                     "members": torch.tensor([[0, 1]] * I), "gumbel": gum[0].view(1, E),
                     "explore": rest[2 * I].view(1, A)}
            a_ours, prev = ours._plan(ob[None], prev, noise)
            d = max((a_off - a_ours[0]).abs().max().item(), (off._prev_mean - prev[:, 0]).abs().max().item())
            worst_plan = max(worst_plan, d)
            print(f"  plan {call} (t0={t0}): official {a_off.tolist()}  ours {a_ours[0].tolist()}  diff {d:.1e}")
    finally:
        omath.gumbel_softmax_sample = real_gumbel
    print(f"tdmpc2 port vs official: max abs diff {worst_update:.1e} (update), {worst_plan:.1e} (plan)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
