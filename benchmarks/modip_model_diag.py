"""MODIP's world model and V on held-out data: the hopper issue's diagnostics B2 and B4 (diagnose, do not tune).

On MODIP's post-offline checkpoint (the run's settings: by default those of sweeps/diag-hopper.yaml, MODIP's
`demo` preset on hopper-medium, common start then `pretrain.steps` offline updates of the world model and the
critics), per seed:

B2, the world model's k-step held-out error, k = 1..K (K = max(the planner's horizon H, --k-max)). Whole
episodes of the offline data (--holdout, 10%) are held out; from every state of a held-out episode each model is
rolled open-loop along the recorded actions, and at step k (only where the episode lasts k more transitions)
it reports
- obs NMSE in MODIP's units (`wm/*`, methods/modip/world_model.py `errors`): the squared error of the normalised
  state, per dimension divided by the variance of the one-step change Δs (1.0 at k=1 = no better than the mean
  change), and also divided by the variance of the state itself (1.0 = no better than the data's mean state,
  the scale that stays meaningful as k grows);
- reward NMSE: squared error over the variance of r (MODIP's unit);
- termination at threshold 0.5 on the model's termination probability: positives (the data's terminals are
  ~0.2% of transitions), TP/FP/FN, recall, precision, the mean probability at positives and negatives, and
  AUROC (the planner uses the probability itself, as an alive mask, not a threshold); on Hopper also MBPO's hand-written rule (healthy height, angle, range) applied to the predicted state.
The models: (a) `ckpt`, the checkpoint's own world model (it was trained on ALL the offline data, held-out
episodes included, so its number is not held out); `demo`, a fresh model of the run's own size and recipe
(the `modip.world_model` section; MODIP's `_wm_step`: one bootstrap batch per member, AdamW, grad clip, as many
steps as the offline phase) trained on the non-held-out episodes only, the fair held-out number; (b) `mbpo`, an
MBPO-sized model on the same split: 7 members, 4 x 200 SiLU (swish), Adam lr 1e-3 with MBPO's per-layer L2
decays (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4), batch 256, epochs over the training set with one bootstrap
resample per member, a holdout of min(20%, 5000) random transitions of the training split, per-member snapshots
when the holdout MSE improves by more than 1%, stop after 5 epochs without one (or at --mbpo-max-epochs /
--mbpo-max-seconds, as MBPO's max_t), the best snapshots restored, and the 5 elites with the lowest holdout MSE
(rolled out as the mean of the elites' means); inputs: observations are z-scored by the harness's normaliser,
actions standardised with the training split's mean and std (MBPO's TensorStandardScaler); targets [Δs, r]
standardised by WorldModel itself. MBPO has no learned termination (a hand-written rule per env); this model
keeps WorldModel's termination head, trained with the same BCE as MODIP's. `persist` is the no-model baseline
(s_{t+k} = s_t, r = the mean reward, never terminates).
What was followed (read, not copied): jannerm/mbpo, mbpo/models/bnn.py (`BNN.train`: holdout_ratio, max_logging
5000, the bootstrap `idxs`, `_save_best` with its 1% rule, max_epochs_since_update 5, `_end_train`'s elites,
`_compile_losses`: the per-member losses summed, the holdout `mse_loss`) and mbpo/algorithms/mbpo.py
(`_train_model(batch_size=256, max_epochs=None, holdout_ratio=0.2, max_t=...)`); mbpo/models/constructor.py
(`construct_model`: 4 x 200 swish, the decays, Adam 1e-3; `format_samples_for_training`: targets [r, Δs]) and
mbpo/static/hopper.py (`termination_fn`), read in forks of it (AlexanderKhazatsky/mbpo, anyboby/ConstrainedMBPO)
since the stored copy of jannerm/mbpo lacks them; its range test `np.abs(next_obs[:, 1:] < 100)` takes abs of a
boolean, so only the upper bound acts: here |obs[1:]| < 100, as Hopper-v5 checks. The contrast:
nicklashansen/tdmpc2, tdmpc2/tdmpc2.py `_update` and tdmpc2/common/world_model.py: a latent model trained on H-step open-loop rollouts (consistency,
reward and value losses discounted by rho^t), so its training loss is itself a multi-step error, where MBPO's
and MODIP's models are trained one step at a time.

B4, V against Monte-Carlo returns: MODIP's V(s) (critics.value, env reward units times reward_scale) against the
discounted return-to-go (γ per env step, the critics' TD discount) on (a) the held-out offline episodes (V was
trained on all offline data: in-sample for V) and (b) fresh episodes of the checkpoint's actors in the env (the
`dp` actor, and the `mpc` planner whose training episodes MODIP's own `diag/v_mc_*` use), on the tuning eval
seeds, exactly as the harness evaluates them (same seeds and actor RNG, so their mean return equals the store's
eval at env step 0). A time-limit truncation is handled two ways, both reported: `bootstrap` (the tail after a
truncation is V at the truncation state, as MODIP's diagnostic does with V_target) and `drop` (no tail; the states
within --drop-horizons / (1 - γ) steps of a truncation are dropped; the residual bias at a kept state is at most
γ^window of the tail's value). Terminated episodes are exact either way. The headline uses `drop` (it does not
use V to judge V). Per seed and checkpoint (--v-checkpoint adds later ones): Spearman rank correlation pooled over
all states, and averaged within episodes (MODIP's `diag/v_mc_spearman` is within ONE training episode), mean V,
mean MC, mean V - MC over states, over episodes (MODIP's per-episode mean), and over states in units of V's
value_scale (mean |r| / (1 - γ)). Later checkpoints: --v-checkpoint SEED=PATH, or --v-env-steps N,M, which
continues the same run online (its training and evals, as the sweep would) to the first episode boundary at or
after each N and keeps env<N>.pt beside post_offline.pt (then B4 runs with that checkpoint's V and actors).

    MINARI_DATASETS_PATH=../shared/data python benchmarks/modip_model_diag.py --seeds 10,11 \
        --store STORE
    python benchmarks/modip_model_diag.py --smoke          # tiny budgets on the demo task, ~30 s of CPU

The post-offline checkpoint is made here (run_one stopped with request_stop_at at the offline step budget, into
sweep --sweep-id of --store, whose pretrained/ cache supplies the common start) unless one is passed with
--checkpoint [SEED=]PATH; an existing one in the store is reused. Seeds: tuning seeds (10-19) only.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
MBPO_DECAYS = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)  # constructor.py: one per layer, the output layer last
SMOKE = {"common_start.steps": 40, "common_start.log_every": 10, "pretrain.steps": 40, "pretrain.log_every": 10,
         "pretrain.checkpoint_every": 40, "online.steps": 200, "online.checkpoint_every": 50, "online.log_every": 50,
         "eval.every": 1000, "eval.episodes": 2, "eval.seed_set": "tune", "eval.timing": False, "threads": 1}


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b) + 1)) if b else [int(s) for s in a.split(",")]


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.0f}"


def md_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---- config and checkpoint -----------------------------------------------------------------------------------
def run_config(args, seed: int):
    """MODIP's RunConfig: the sweep file's settings (as `bench.sweep.spec.expand` resolves them, so the run id and
    the common-start cache key are the sweep's), or the smoke budget on the demo task."""
    from bench.config.layers import resolve_config

    extra = {}
    if args.offline_steps is not None:
        extra["pretrain.steps"] = args.offline_steps
    if args.common_start_steps is not None:
        extra["common_start.steps"] = args.common_start_steps
    if args.smoke:
        def resolve(more):
            return resolve_config("modip", "demo", seed, {"preset": "demo", **SMOKE, **more})
    else:
        from bench.sweep.spec import applies_to, load_sweep

        spec = load_sweep(args.sweep_file)
        if spec.grid:
            raise SystemExit(f"modip_model_diag: {args.sweep_file} has a grid; give a sweep file of one setting")
        task = args.task or spec.tasks[0]
        common = {k: v for k, v in spec.overrides.items() if applies_to(k, "modip")}

        def resolve(more):
            return resolve_config("modip", task, seed, more, sweep=common, per_method=spec.per_method.get("modip", {}))
    cfg = resolve(extra)
    if cfg.pretrain.steps % cfg.pretrain.checkpoint_every:
        # the stop must land on a checkpoint inside the offline loop, before the post-offline eval would run
        cfg = resolve({**extra, "pretrain.checkpoint_every": cfg.pretrain.steps})
    return cfg


def _run_until(cfg, store: Path, sweep_id: str, progress: bool, **stop_at) -> None:
    """Run (or continue from its last.pt) the run of `cfg` in the store sweep until a stop request fires."""
    from bench.runner.lifecycle import run_one
    from bench.runner.stops import Preempted, request_stop_at

    request_stop_at(**stop_at)
    try:
        run_one(cfg, store_root=store, sweep_id=sweep_id, progress=progress, rerun=True)
    except Preempted:
        pass
    finally:
        request_stop_at(None, None)


def post_offline_checkpoint(cfg, store: Path, sweep_id: str, progress: bool) -> tuple[Path, str]:
    """The run's checkpoint right after its offline steps, kept as post_offline.pt beside the run's last.pt (which
    a continued run overwrites): reused, or made by run_one stopped at grad step pretrain.steps (the common start
    comes from <store>/pretrained/ when cached)."""
    import shutil

    from bench.config.run import run_id_of
    from bench.runner.checkpoints import load_checkpoint
    from bench.runner.progress import Progress

    folder = store / "checkpoints" / sweep_id / run_id_of(cfg)
    post, last = folder / "post_offline.pt", folder / "last.pt"
    if post.exists():
        return post, "reused"
    t0, how = time.perf_counter(), "reused"
    if not last.exists():
        _run_until(cfg, store, sweep_id, progress, grad_step=cfg.pretrain.steps)
        how = f"made in {time.perf_counter() - t0:.0f} s"
    if not last.exists():
        raise SystemExit(f"modip_model_diag: the run left no checkpoint at {last}")
    prog = Progress.from_json(load_checkpoint(last)["counters"])
    if prog.env_step != 0 or prog.grad_step != cfg.pretrain.steps:
        raise SystemExit(f"modip_model_diag: {last} is at grad step {prog.grad_step}, env step {prog.env_step}, not "
                         f"right after the offline phase, and no post_offline.pt was kept; delete {folder}")
    shutil.copyfile(last, post)
    return post, how


def later_checkpoints(cfg, store: Path, sweep_id: str, post: Path, env_steps: list[int], progress: bool
                      ) -> list[Path]:
    """Checkpoints of the same run continued online (its training, evals included) to the first episode boundary
    at or after each env step, kept as env<N>.pt."""
    import shutil

    out = []
    for n in sorted(env_steps):
        target = post.parent / f"env{n}.pt"
        if not target.exists():
            if not 0 < n < cfg.online.steps:
                raise SystemExit(f"modip_model_diag: --v-env-steps {n} must be in (0, online.steps={cfg.online.steps})")
            _run_until(cfg, store, sweep_id, progress, env_step=n)
            shutil.copyfile(post.parent / "last.pt", target)
        out.append(target)
    return out


def load_run(cfg, ckpt: Path):
    """The run's parts (assemble) with the checkpoint's method and normaliser loaded; the DP restarts from its
    EMA weights where the checkpoint (of older code) was taken inside the offline phase."""
    from bench.runner.assemble import assemble
    from bench.runner.checkpoints import load_checkpoint, seed_everything
    from bench.runner.progress import Progress

    seed_everything(cfg.seed)
    parts = assemble(cfg)
    st = load_checkpoint(ckpt)
    parts.method.load_state_dict(st["method"])
    parts.normalizer.load_state_dict(st["normalizer"])
    prog = Progress.from_json(st["counters"])
    if not prog.pretrain_done:
        parts.method.dp.reset_to_ema()
    return parts, prog, str(st.get("run_id", ""))


# ---- data ----------------------------------------------------------------------------------------------------
def offline_split(parts, share: float, seed: int) -> dict:
    """The offline data as normalised tensors, its episodes, and a held-out set of whole episodes."""
    import torch

    buf, nz = parts.buffer, parts.normalizer
    d = buf.offline_stats(("obs", "action", "reward", "next_obs", "terminal", "timeout", "episode"))
    ep = d["episode"]
    ids = np.unique(ep)
    rng = np.random.default_rng(seed * 1009 + 17)
    n_hold = min(len(ids) - 1, max(1, round(share * len(ids))))
    held_ids = rng.choice(ids, size=n_hold, replace=False)
    held = np.isin(ep, held_ids)
    last = np.zeros(len(ep), np.int64)  # each transition's episode's last index
    ends = np.flatnonzero(np.r_[ep[1:] != ep[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    for b, e in zip(starts, ends):
        last[b: e + 1] = e
    with torch.no_grad():
        obs = nz.norm_obs(torch.as_tensor(d["obs"]))
        nobs = nz.norm_obs(torch.as_tensor(d["next_obs"]))
        act = nz.norm_act(torch.as_tensor(d["action"]))
    train = ~held
    dvar, svar = (nobs - obs)[train].var(0), obs[train].var(0)
    dims = (dvar > 1e-12) & (svar > 1e-12)  # constant dimensions (e.g. the demo's last) carry no error to score
    return {"raw": d, "obs": obs, "next_obs": nobs, "action": act, "reward": torch.as_tensor(d["reward"]),
            "terminal": d["terminal"].astype(bool), "last": last, "held": held, "train": train,
            "episodes": list(zip(starts, ends)), "held_ids": {int(i) for i in held_ids},
            "dvar": dvar[dims], "svar": svar[dims], "dims": dims,
            "rvar": float(torch.as_tensor(d["reward"])[train].var()), "rmean": float(d["reward"][train].mean())}


# ---- B2: models ------------------------------------------------------------------------------------------------
class Predictor:
    """One planning step s, a -> (s', r, termination probability) in normalised units."""

    def __init__(self, name: str, step, info: dict):
        self.name, self.step, self.info = name, step, info


def wm_config(base, **kw):
    return base.model_copy(update=kw)


def train_demo_size(cfg, data: dict, steps: int, seed: int) -> Predictor:
    """A fresh world model of the run's size, trained with MODIP's own recipe (`_wm_step`: each member its own
    uniform batch of `batch_size`, AdamW, grad clip) on the training split only, for `steps` updates."""
    import torch

    from methods.modip.world_model import WorldModel

    wcfg = cfg.section.world_model
    torch.manual_seed(seed * 7 + 3)
    tr = np.flatnonzero(data["train"])
    wm = WorldModel(data["obs"].shape[1], data["action"].shape[1], wcfg)
    wm.set_target_stats(data["obs"][tr], data["next_obs"][tr], data["reward"][tr])
    opt = torch.optim.AdamW(wm.parameters(), lr=wcfg.lr, weight_decay=wcfg.weight_decay)
    rng = np.random.default_rng(seed * 7 + 5)
    k, n = wcfg.members, wcfg.batch_size
    t0 = time.perf_counter()
    wm.train()
    for _ in range(steps):
        idx = tr[rng.integers(0, len(tr), size=(k, n))]
        loss, _ = wm.loss(data["obs"][idx], data["action"][idx], data["next_obs"][idx], data["reward"][idx],
                          torch.as_tensor(data["terminal"][idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), wcfg.grad_clip)
        opt.step()
    wm.eval()
    info = {"members": k, "elites": k, "hidden": list(wcfg.hidden), "data": "train split",
            "budget": f"{steps} steps", "stop": "budget", "train_s": time.perf_counter() - t0,
            "params": sum(p.numel() for p in wm.parameters())}
    return Predictor("demo", lambda s, a: wm.step(s, a, disagreement=False)[:3], info)


def train_mbpo_size(cfg, data: dict, seed: int, max_epochs: int | None, max_seconds: float,
                    members: int = 7, elites: int = 5, hidden=(200, 200, 200, 200), batch: int = 256) -> Predictor:
    """An MBPO-sized ensemble on the training split, trained as MBPO's BNN.train does (module docstring)."""
    import torch

    from methods.modip.world_model import WorldModel

    torch.manual_seed(seed * 7 + 11)
    rng = np.random.default_rng(seed * 7 + 13)
    tr = np.flatnonzero(data["train"])
    perm = rng.permutation(tr)
    n_hold = min(int(len(tr) * 0.2), 5000)
    hold, fit = perm[:n_hold], perm[n_hold:]
    a_mean = data["action"][fit].mean(0)
    a_std = data["action"][fit].std(0).clamp_min(1e-6)

    def scale(a):
        return (a - a_mean) / a_std

    wcfg = wm_config(cfg.section.world_model, members=members, hidden=list(hidden))
    wm = WorldModel(data["obs"].shape[1], data["action"].shape[1], wcfg)
    wm.set_target_stats(data["obs"][fit], data["next_obs"][fit], data["reward"][fit])
    weights = [layer.weight for layer in wm.net.layers] + [wm.net.out.weight]
    opt = torch.optim.Adam(wm.parameters(), lr=1e-3)
    member_params = {name: p for name, p in wm.net.named_parameters() if p.shape[0] == members}

    def targets(idx):
        t = torch.cat([data["next_obs"][idx] - data["obs"][idx], data["reward"][idx].unsqueeze(-1)], -1)
        return (t - wm.target_mean) / wm.target_std

    h_s, h_a, h_z = data["obs"][hold], scale(data["action"][hold]), targets(hold)

    @torch.no_grad()
    def holdout_mse() -> np.ndarray:  # per member, on [Δs, r] standardised (MBPO's mse_loss)
        mean = wm(h_s, h_a)[0]
        return ((mean - h_z) ** 2).mean(dim=(1, 2)).numpy()

    idxs = rng.integers(0, len(fit), size=(members, len(fit)))  # one bootstrap resample per member
    best = np.full(members, 1e10)
    snaps: dict[int, dict[str, torch.Tensor]] = {}
    since, epoch, stop = 0, 0, "max epochs"
    t0 = time.perf_counter()
    while max_epochs is None or epoch < max_epochs:
        wm.train()
        for b in range(math.ceil(len(fit) / batch)):
            idx = fit[idxs[:, b * batch:(b + 1) * batch]]
            loss, _ = wm.loss(data["obs"][idx], scale(data["action"][idx]), data["next_obs"][idx],
                              data["reward"][idx], torch.as_tensor(data["terminal"][idx]))
            # bnn.py sums the members' losses and adds each layer's L2 decay (tf.nn.l2_loss = sum(w^2) / 2)
            l2 = sum(dec * 0.5 * (w ** 2).sum() for dec, w in zip(MBPO_DECAYS, weights))
            opt.zero_grad(set_to_none=True)
            (members * loss + l2).backward()
            opt.step()
        idxs = np.take_along_axis(idxs, np.argsort(rng.random(idxs.shape), axis=1), axis=1)
        epoch += 1
        losses = holdout_mse()
        improved = False
        for i in range(members):
            if (best[i] - losses[i]) / best[i] > 0.01:
                best[i] = losses[i]
                snaps[i] = {name: p[i].detach().clone() for name, p in member_params.items()}
                improved = True
        since = 0 if improved else since + 1
        if since > 5:
            stop = "early stop"
            break
        if time.perf_counter() - t0 > max_seconds:
            stop = "time cap"
            break
    with torch.no_grad():
        for i, snap in snaps.items():
            for name, p in member_params.items():
                p[i].copy_(snap[name])
    final = holdout_mse()
    elite = torch.as_tensor(np.argsort(final)[:elites])
    wm.eval()

    @torch.no_grad()
    def step(s, a):
        s_next, r, logit = wm.member_means(s, scale(a))
        return s_next[elite].mean(0), r[elite].mean(0), torch.sigmoid(logit[elite]).mean(0)

    info = {"members": members, "elites": elites, "hidden": list(hidden), "data": "train split",
            "budget": f"{epoch} epochs x {math.ceil(len(fit) / batch)} steps", "stop": stop,
            "train_s": time.perf_counter() - t0, "params": sum(p.numel() for p in wm.parameters()),
            "holdout_mse": float(np.sort(final)[:elites].mean())}
    return Predictor("mbpo", step, info)


def checkpoint_predictor(method) -> Predictor:
    wm, wcfg = method.world_model, method.cfg.world_model
    wm.eval()
    info = {"members": wcfg.members, "elites": wcfg.members, "hidden": list(wcfg.hidden),
            "data": "all offline data (held-out included)", "budget": f"{method.updates} steps",
            "stop": "budget", "train_s": float("nan"), "params": sum(p.numel() for p in wm.parameters())}
    return Predictor("ckpt", lambda s, a: wm.step(s, a, disagreement=False)[:3], info)


def persistence_predictor(data: dict) -> Predictor:
    import torch

    r = data["rmean"]
    info = {"members": 0, "elites": 0, "hidden": [], "data": "–", "budget": "–", "stop": "–",
            "train_s": float("nan"), "params": 0}
    return Predictor("persist", lambda s, a: (s, torch.full(s.shape[:1], r), torch.zeros(s.shape[0])), info)


def hopper_unhealthy(obs: np.ndarray) -> np.ndarray:
    """Hopper-v5's termination on observations (obs[0] height > 0.7, |obs[1]| angle < 0.2, |obs[1:]| < 100 are
    healthy), which MBPO's static Hopper function writes the same way."""
    finite = np.isfinite(obs).all(-1)
    healthy = finite & (np.abs(obs[:, 1:]) < 100).all(-1) & (obs[:, 0] > 0.7) & (np.abs(obs[:, 1]) < 0.2)
    return ~healthy


def kstep_errors(pred: Predictor, data: dict, normalizer, k_max: int, rule, max_starts: int, seed: int,
                 chunk: int = 4096) -> list[dict]:
    """Per k = 1..k_max: errors of the open-loop rollout from every held-out state along its recorded actions
    (only where the episode lasts k more transitions)."""
    import torch

    starts = np.flatnonzero(data["held"])
    if max_starts and len(starts) > max_starts:
        starts = np.sort(np.random.default_rng(seed).choice(starts, max_starts, replace=False))
    acc = [{"n": 0, "obs_d": 0.0, "obs_s": 0.0, "rew": 0.0, "pos": 0, "tp": 0, "fp": 0, "p_pos": [], "p_neg": [],
            "rule_tp": 0, "rule_fp": 0} for _ in range(k_max)]
    dvar, svar, rvar = data["dvar"], data["svar"], data["rvar"]
    with torch.no_grad():
        for c in range(0, len(starts), chunk):
            st = starts[c: c + chunk]
            s = data["obs"][st]
            for j in range(1, k_max + 1):
                raw = st + j - 1
                valid = raw <= data["last"][st]
                idx = np.minimum(raw, data["last"][st])
                s, r, p = pred.step(s, data["action"][idx])
                if not valid.any():
                    break
                v = torch.as_tensor(valid)
                true_s = data["next_obs"][idx]
                err = ((s - true_s) ** 2)[:, data["dims"]]
                a = acc[j - 1]
                a["n"] += int(valid.sum())
                a["obs_d"] += float((err / dvar).mean(-1)[v].sum())
                a["obs_s"] += float((err / svar).mean(-1)[v].sum())
                a["rew"] += float(((r - data["reward"][idx]) ** 2)[v].sum() / rvar)
                term = data["terminal"][idx] & valid
                neg = ~data["terminal"][idx] & valid
                pn = p.numpy()
                hit = pn > 0.5
                a["pos"] += int(term.sum())
                a["tp"] += int((hit & term).sum())
                a["fp"] += int((hit & neg).sum())
                a["p_pos"].append(pn[term])
                a["p_neg"].append(pn[neg])
                if rule is not None:
                    r_hit = rule(normalizer_unnorm(normalizer, s))
                    a["rule_tp"] += int((r_hit & term).sum())
                    a["rule_fp"] += int((r_hit & neg).sum())
    out = []
    for j, a in enumerate(acc, start=1):
        n, pos = a["n"], a["pos"]
        p_pos = np.concatenate(a["p_pos"]) if a["p_pos"] else np.zeros(0)
        p_neg = np.concatenate(a["p_neg"]) if a["p_neg"] else np.zeros(0)
        out.append({"k": j, "n": n, "obs_nmse_dvar": a["obs_d"] / max(n, 1), "obs_nmse_svar": a["obs_s"] / max(n, 1),
                    "rew_nmse": a["rew"] / max(n, 1), "pos": pos, "tp": a["tp"], "fp": a["fp"],
                    "fn": pos - a["tp"], "recall": a["tp"] / pos if pos else float("nan"),
                    "precision": a["tp"] / (a["tp"] + a["fp"]) if a["tp"] + a["fp"] else float("nan"),
                    "p_pos": float(p_pos.mean()) if len(p_pos) else float("nan"),
                    "p_neg": float(p_neg.mean()) if len(p_neg) else float("nan"), "auroc": auroc(p_pos, p_neg),
                    "rule_recall": a["rule_tp"] / pos if rule is not None and pos else float("nan"),
                    "rule_precision": (a["rule_tp"] / (a["rule_tp"] + a["rule_fp"])
                                       if rule is not None and a["rule_tp"] + a["rule_fp"] else float("nan"))})
    return out


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(p at a positive > p at a negative), ties counted half (Mann-Whitney U over the pooled ranks)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    import pandas as pd

    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def normalizer_unnorm(normalizer, s):
    return (s * normalizer.obs_std + normalizer.obs_mean).numpy()


# ---- B4: V against Monte-Carlo returns -------------------------------------------------------------------------
def offline_episodes(data: dict) -> list[dict]:
    """The held-out offline episodes as {obs, reward, terminated, truncated, last_obs} (env units)."""
    d = data["raw"]
    eps = []
    for b, e in data["episodes"]:
        if int(d["episode"][b]) not in data["held_ids"]:
            continue
        term = bool(d["terminal"][e])
        eps.append({"obs": d["obs"][b: e + 1], "reward": d["reward"][b: e + 1].astype(np.float64),
                    "terminated": term, "truncated": not term, "last_obs": d["next_obs"][e],
                    "return": float(d["reward"][b: e + 1].sum())})
    return eps


def record_episodes(method, task, actor: str, seeds: list[int], device, reward_scale: float) -> list[dict]:
    """Episodes of `actor` on `seeds`, stepped exactly as bench.runner.evaluation.evaluate_actor does (lockstep
    envs acting on the unfinished episodes alone, a fresh ActorState seeded from the first eval seed), with every
    state and reward recorded."""
    import torch

    from methods.base import ActorState

    envs = [task.make_env() for _ in seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)]).astype(np.float32)
    state = ActorState.create(int(seeds[0]) * 31 + 17, device)
    eps = [{"obs": [], "reward": [], "terminated": False, "truncated": False, "last_obs": None, "return": 0.0}
           for _ in seeds]
    done = np.zeros(len(seeds), bool)
    with torch.no_grad():
        active = np.arange(len(seeds))  # the unfinished episodes: the harness acts on them alone
        while len(active):
            chunks, _ = method.act(obs[active], actor, state, True)
            for t in range(chunks.shape[1]):
                for row, i in enumerate(active):
                    if done[i]:
                        continue
                    eps[i]["obs"].append(obs[i].copy())
                    o, r, term, trunc, _ = envs[i].step(chunks[row, t])
                    eps[i]["reward"].append(float(r) * reward_scale)
                    eps[i]["return"] += float(r)
                    obs[i] = o
                    if term or trunc:
                        done[i] = True
                        eps[i].update(terminated=bool(term), truncated=bool(trunc and not term), last_obs=o.copy())
                if done[active].all():
                    break
            still = ~done[active]
            if not still.all():
                state.keep(np.flatnonzero(still))
                active = active[still]
    for env in envs:
        env.close()
    for ep in eps:
        ep["obs"] = np.asarray(ep["obs"], np.float32)
        ep["reward"] = np.asarray(ep["reward"], np.float64)
    return eps


def v_vs_mc(method, episodes: list[dict], gamma: float, mode: str, window: int) -> dict:
    """V(s) against the discounted return-to-go over `episodes` (module docstring: `bootstrap` or `drop`)."""
    import torch

    from methods.modip.diagnostics import spearman

    crit, nz = method.critics, method.normalizer
    vs, mcs, per_ep_rho, per_ep_gap = [], [], [], []
    n_eps = 0
    with torch.no_grad():
        for ep in episodes:
            T = len(ep["reward"])
            if T == 0:
                continue
            v = crit.value(nz.norm_obs(torch.as_tensor(ep["obs"]))).numpy().astype(np.float64)
            tail = 0.0
            if mode == "bootstrap" and ep["truncated"]:
                tail = float(crit.value(nz.norm_obs(torch.as_tensor(ep["last_obs"][None], dtype=torch.float32))))
            mc = np.zeros(T)
            acc = tail
            for i in range(T - 1, -1, -1):
                acc = ep["reward"][i] + gamma * acc
                mc[i] = acc
            keep = np.ones(T, bool)
            if mode == "drop" and ep["truncated"]:
                keep = (T - np.arange(T)) >= window
            if not keep.any():
                continue
            n_eps += 1
            v, mc = v[keep], mc[keep]
            vs.append(v)
            mcs.append(mc)
            per_ep_gap.append(float(np.mean(v - mc)))
            if len(v) > 2 and v.std() > 0 and mc.std() > 0:
                per_ep_rho.append(spearman(v, mc))
    if not vs:
        return {"episodes": 0, "states": 0}
    v, mc = np.concatenate(vs), np.concatenate(mcs)
    scale = float(crit.value_scale)
    return {"episodes": n_eps, "states": len(v),
            "rho": spearman(v, mc) if len(v) > 2 and v.std() > 0 and mc.std() > 0 else float("nan"),
            "rho_within": float(np.mean(per_ep_rho)) if per_ep_rho else float("nan"),
            "v": float(v.mean()), "mc": float(mc.mean()), "gap": float((v - mc).mean()),
            "gap_ep": float(np.mean(per_ep_gap)), "gap_norm": float((v - mc).mean()) / scale, "scale": scale}


# ---- main ------------------------------------------------------------------------------------------------------
def parse_paths(items: list[str], seeds: list[int], flag: str) -> dict[int, list[Path]]:
    out: dict[int, list[Path]] = {}
    for item in items:
        seed_text, sep, path = item.partition("=")
        if not sep:
            if len(seeds) != 1:
                raise SystemExit(f"modip_model_diag: {flag} PATH needs SEED=PATH with several seeds")
            seed_text, path = str(seeds[0]), item
        out.setdefault(int(seed_text), []).append(Path(path))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="10,11", help="tuning seeds, e.g. 10,11 or 10-14")
    ap.add_argument("--store", default="results-diag", help="store root (its pretrained/ caches the common start)")
    ap.add_argument("--sweep-file", default=str(ROOT / "sweeps" / "diag-hopper.yaml"))
    ap.add_argument("--task", default="", help="default: the sweep file's first task")
    ap.add_argument("--sweep-id", default="diag-wm", help="the store sweep that the offline phase runs into")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="[SEED=]PATH",
                    help="a post-offline checkpoint instead of making one")
    ap.add_argument("--v-checkpoint", action="append", default=[], metavar="SEED=PATH",
                    help="a later checkpoint of the same run for B4 (repeatable)")
    ap.add_argument("--v-env-steps", default="", help="also B4 at the run continued online to these env steps "
                    "(e.g. 2000,4000; made here from the post-offline checkpoint: online training and its evals)")
    ap.add_argument("--offline-steps", type=int, default=None, help="default: the sweep file's pretrain.steps")
    ap.add_argument("--common-start-steps", type=int, default=None, help="default: the sweep file's")
    ap.add_argument("--holdout", type=float, default=0.1, help="share of offline episodes held out")
    ap.add_argument("--k-max", type=int, default=10, help="k runs to max(H, this)")
    ap.add_argument("--max-starts", type=int, default=0, help="held-out start states (0 = all)")
    ap.add_argument("--models", default="ckpt,demo,mbpo,persist")
    ap.add_argument("--demo-steps", type=int, default=None, help="the fresh demo-size model (default: offline steps)")
    ap.add_argument("--mbpo-max-epochs", type=int, default=None, help="default: until early stopping")
    ap.add_argument("--mbpo-max-seconds", type=float, default=1200.0, help="MBPO's max_t, per seed")
    ap.add_argument("--episodes", type=int, default=10, help="fresh env episodes per actor (tuning eval seeds)")
    ap.add_argument("--actors", default="dp,mpc", help="actors whose fresh episodes B4 scores")
    ap.add_argument("--drop-horizons", type=float, default=1.0, help="drop window in units of 1/(1-γ)")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets on the demo task (a temp dataset and store)")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    seeds = parse_seeds(args.seeds)
    if not all(10 <= s <= 19 for s in seeds):
        raise SystemExit("modip_model_diag: tuning seeds (10-19) only")
    tmp = None
    if args.smoke:
        from bench.data.d4rl import make_dataset
        from bench.tasks.demo import DEMO_DATASET

        tmp = tempfile.TemporaryDirectory()
        os.environ["MINARI_DATASETS_PATH"] = str(Path(tmp.name) / "minari")
        make_dataset(DEMO_DATASET, root=Path(tmp.name) / "minari", agent_steps=2000, dataset_size=1500,
                     progress=False)
        args.store = str(Path(tmp.name) / "store")
        args.demo_steps = args.demo_steps or 40
        args.mbpo_max_epochs = args.mbpo_max_epochs or 2
        args.episodes = min(args.episodes, 2)
        args.max_starts = args.max_starts or 300
        args.k_max = min(args.k_max, 6)
        args.v_env_steps = args.v_env_steps or "30"
    try:
        return run(args, seeds)
    finally:
        if tmp is not None:
            tmp.cleanup()


def run(args, seeds: list[int]) -> int:
    from bench.config.run import run_id_of
    from bench.tasks import TUNE_EVAL_SEEDS

    store = Path(args.store)
    given = parse_paths(args.checkpoint, seeds, "--checkpoint")
    later = parse_paths(args.v_checkpoint, seeds, "--v-checkpoint")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    actors = [a.strip() for a in args.actors.split(",") if a.strip()]
    setup_rows, model_rows, b2_rows, b4_rows = [], [], [], []
    task_name, horizon, k_max = "", 0, 0
    t_start = time.perf_counter()
    for seed in seeds:
        t_seed = time.perf_counter()
        cfg = run_config(args, seed)
        rid = run_id_of(cfg)
        if seed in given:
            ckpt, how = given[seed][0], "given"
        else:
            ckpt, how = post_offline_checkpoint(cfg, store, args.sweep_id, progress=not args.smoke)
        parts, prog, ck_rid = load_run(cfg, ckpt)
        if ck_rid and ck_rid != rid:
            print(f"note: seed {seed}: the checkpoint's run id {ck_rid} is not this config's {rid}", file=sys.stderr)
        method, task = parts.method, parts.task
        task_name = task.name
        horizon = method.cfg.planner.horizon
        k_max = max(horizon, args.k_max)
        gamma = float(parts.spaces.gamma)
        window = math.ceil(round(args.drop_horizons / (1.0 - gamma), 6))
        data = offline_split(parts, args.holdout, seed)
        n_eps = len(data["episodes"])
        setup_rows.append([str(seed), rid, f"{ckpt} ({how})", f"grad {prog.grad_step}, env {prog.env_step}",
                           f"{len(data['held_ids'])}/{n_eps}", int(data["held"].sum()),
                           int(data["terminal"][data["held"]].sum()), int(data["terminal"][data["train"]].sum())])

        # B2
        rule = hopper_unhealthy if task.env_id.startswith("Hopper") else None
        preds = []
        for name in models:
            if name == "ckpt":
                preds.append(checkpoint_predictor(method))
            elif name == "demo":
                preds.append(train_demo_size(cfg, data, args.demo_steps or cfg.pretrain.steps, seed))
            elif name == "mbpo":
                preds.append(train_mbpo_size(cfg, data, seed, args.mbpo_max_epochs, args.mbpo_max_seconds))
            elif name == "persist":
                preds.append(persistence_predictor(data))
            else:
                raise SystemExit(f"modip_model_diag: unknown model '{name}' (ckpt, demo, mbpo, persist)")
        for p in preds:
            i = p.info
            model_rows.append([str(seed), p.name, f"{i['members']}/{i['elites']}", "x".join(map(str, i["hidden"])) or "–",
                               i["params"], i["data"], i["budget"], i["stop"], i["train_s"],
                               i.get("holdout_mse", float("nan"))])
            for row in kstep_errors(p, data, parts.normalizer, k_max, rule, args.max_starts, seed):
                b2_rows.append({"seed": seed, "model": p.name, **row})
        if rule is not None:  # the rule on the TRUE next states of the held-out data: does it match the env's?
            held = data["held"]
            hit = rule(data["raw"]["next_obs"][held])
            term = data["terminal"][held]
            b2_rows.append({"seed": seed, "model": "rule on true s'", "k": 1, "n": int(held.sum()), "pos": int(term.sum()),
                            "tp": int((hit & term).sum()), "fp": int((hit & ~term).sum()),
                            "fn": int((~hit & term).sum()),
                            "recall": float((hit & term).sum() / max(term.sum(), 1)),
                            "precision": float((hit & term).sum() / max(hit.sum(), 1))})

        # B4
        v_runs = [("post-offline", method, parts)]
        steps = [int(x) for x in args.v_env_steps.split(",") if x.strip()]
        made: list[Path] = []
        if steps and seed in given:
            print(f"note: seed {seed}: --v-env-steps needs the run in the store, not a given checkpoint; skipped",
                  file=sys.stderr)
        elif steps:
            made = later_checkpoints(cfg, store, args.sweep_id, ckpt, steps, not args.smoke)
        for path in [*later.get(seed, []), *made]:
            lp, lprog, _ = load_run(cfg, path)
            v_runs.append((f"env {lprog.env_step}", lp.method, lp))
        off_eps = offline_episodes(data)
        eval_seeds = list(TUNE_EVAL_SEEDS[: args.episodes])
        for label, m, pp in v_runs:
            sources = [("offline held-out", off_eps, float(np.mean([e["return"] for e in off_eps])) / cfg.reward_scale)]
            for actor in actors:
                eps = record_episodes(m, pp.task, actor, eval_seeds, torch_device(cfg), cfg.reward_scale)
                if args.smoke:  # the recorder steps as the harness's evaluation does: the same returns
                    from bench.runner.evaluation import evaluate_actor

                    ref = evaluate_actor(m, pp.task, actor, eval_seeds, torch_device(cfg))["returns"]
                    if not np.allclose(ref, [e["return"] for e in eps]):
                        raise SystemExit(f"modip_model_diag: {actor} episodes differ from evaluate_actor's")
                sources.append((f"{actor} episodes", eps, float(np.mean([e["return"] for e in eps]))))
            for src, eps, ret in sources:
                n_trunc = sum(bool(e["truncated"]) for e in eps)
                mean_len = float(np.mean([len(e["reward"]) for e in eps])) if eps else float("nan")
                for mode in ("bootstrap", "drop"):
                    res = v_vs_mc(m, eps, gamma, mode, window)
                    b4_rows.append({"seed": seed, "ckpt": label, "source": src, "mode": mode, "return": ret,
                                    "len": mean_len, "trunc": n_trunc, "window": window, **res})
        print(f"seed {seed}: done in {time.perf_counter() - t_seed:.0f} s", file=sys.stderr, flush=True)

    print_report(args, seeds, task_name, horizon, k_max, setup_rows, model_rows, b2_rows, b4_rows)
    print(headline(seeds, task_name, horizon, b2_rows, b4_rows, time.perf_counter() - t_start))
    return 0


def torch_device(cfg):
    import torch

    return torch.device(cfg.device)


def print_report(args, seeds, task_name, horizon, k_max, setup_rows, model_rows, b2_rows, b4_rows) -> None:
    print(f"# MODIP's world model and V on {task_name}, seeds {','.join(map(str, seeds))}"
          f"{' (SMOKE: tiny budgets on the demo task)' if args.smoke else ''}\n")
    print("## Setup\n")
    print(md_table(["seed", "run id", "checkpoint", "counters", "held-out eps", "held-out transitions",
                    "held-out terminals", "train terminals"], setup_rows))
    print(f"\nPlanner horizon H = {horizon}; k = 1..{k_max}.\n")
    print("## B2: the models\n")
    print(md_table(["seed", "model", "members/elites", "hidden", "params", "trained on", "budget", "stop",
                    "train s", "elite holdout MSE"], model_rows))
    models = list(dict.fromkeys(r["model"] for r in b2_rows if "obs_nmse_dvar" in r))
    ks = list(range(1, k_max + 1))
    heads = ["seed", "model"] + [f"k={k}" + (" (H)" if k == horizon else "") for k in ks]
    for key, title in (("obs_nmse_dvar", "obs NMSE, per-dim Δs-variance units (MODIP's wm/*; 1 = the mean change)"),
                       ("obs_nmse_svar", "obs NMSE, per-dim state-variance units (1 = the data's mean state)"),
                       ("rew_nmse", "reward NMSE (variance of r units)")):
        rows = []
        for seed in seeds:
            for m in models:
                by_k = {r["k"]: r for r in b2_rows if r["seed"] == seed and r["model"] == m and key in r}
                rows.append([str(seed), m] + [by_k[k][key] if k in by_k and by_k[k]["n"] else None for k in ks])
        print(f"\n## B2: held-out {title}\n")
        print(md_table(heads, rows))
    show_k = sorted(set(range(1, horizon + 1)) | {k_max})
    rows = []
    for r in b2_rows:
        if r["model"] == "persist" or ("obs_nmse_dvar" in r and r["k"] not in show_k):
            continue
        rows.append([str(r["seed"]), r["model"], "–" if "obs_nmse_dvar" not in r else str(r["k"]), r["n"], r["pos"],
                     r["tp"], r["fp"], r["fn"], r["recall"], r["precision"], r.get("p_pos"), r.get("p_neg"),
                     r.get("auroc"), r.get("rule_recall"), r.get("rule_precision")])
    print("\n## B2: termination on held-out data (threshold 0.5 on the termination probability at step k)\n")
    print(md_table(["seed", "model", "k", "n", "positives", "TP", "FP", "FN", "recall", "precision", "mean p at pos",
                    "mean p at neg", "AUROC", "rule recall", "rule precision"], rows))
    print("\nThe planner uses the probability itself (an alive mask Π(1 - d̂)), so AUROC (threshold-free: the "
          "chance that a terminal transition gets a higher p than a non-terminal one) matters as much as the 0.5 "
          "threshold. Positives at step k: terminal transitions k - 1 steps after a start state (one per "
          "terminated held-out episode at least k long). `rule`: Hopper-v5's termination (MBPO's static Hopper "
          "function) on the model's predicted state; `rule on true s'`: the same rule on the data's next states "
          "(checks it against the env's terminals).")
    print("\n## B4: V against discounted Monte-Carlo returns (γ per env step)\n")
    rows = [[str(r["seed"]), r["ckpt"], r["source"], r["mode"], r["return"], r["len"], r["trunc"], r["episodes"],
             r["states"], r.get("rho"), r.get("rho_within"), r.get("v"), r.get("mc"), r.get("gap"), r.get("gap_ep"),
             r.get("gap_norm")] for r in b4_rows]
    print(md_table(["seed", "checkpoint", "source", "truncation", "actor return", "mean length", "truncated eps",
                    "eps", "states", "Spearman (pooled)", "Spearman (within ep.)", "mean V", "mean MC",
                    "V - MC (states)", "V - MC (per ep.)", "(V - MC) / value_scale"], rows))
    scale = next((r["scale"] for r in b4_rows if "scale" in r), float("nan"))
    window = b4_rows[0]["window"] if b4_rows else 0
    print(f"\n`bootstrap`: the tail after a time-limit truncation is V at the truncation state; `drop`: no tail, "
          f"states within {window} steps of a truncation dropped (residual ≤ γ^{window} of the tail); terminated "
          f"episodes are exact in both. The headline uses `drop`. value_scale = {fmt(scale)}. "
          f"`offline held-out`: held out of the B2 split only; V was trained on all offline data. `actor return`: "
          f"the mean undiscounted env return of the episodes (fresh ones: what the harness's eval of that "
          f"checkpoint gives on the same seeds, e.g. the store's eval at env step 0 for post-offline).")


def headline(seeds, task_name, horizon, b2_rows, b4_rows, wall: float) -> str:
    def b2(model, k, key):
        vals = [r[key] for r in b2_rows if r["model"] == model and r.get("k") == k and key in r and r["n"]]
        return float(np.mean(vals)) if vals else float("nan")

    def term(model):
        rows = [r for r in b2_rows if r["model"] == model and r.get("k") == 1 and "obs_nmse_dvar" in r]
        if not rows:
            return "–"
        return f"{sum(r['tp'] for r in rows)}/{sum(r['pos'] for r in rows)} (AUROC {fmt(b2(model, 1, 'auroc'))})"

    def b4(source, key):
        vals = [r[key] for r in b4_rows if r["source"] == source and r["mode"] == "drop"
                and r["ckpt"] == "post-offline" and key in r]
        return float(np.mean(vals)) if vals else float("nan")

    wm = ", ".join(f"{m} {fmt(b2(m, horizon, 'obs_nmse_dvar'))} / {fmt(b2(m, horizon, 'obs_nmse_svar'))}"
                   for m in ("ckpt", "demo", "mbpo", "persist") if any(r["model"] == m for r in b2_rows))
    tm = ", ".join(f"{m} {term(m)}" for m in ("ckpt", "demo", "mbpo") if any(r["model"] == m for r in b2_rows))
    sources = list(dict.fromkeys(r["source"] for r in b4_rows))
    vm = "; ".join(f"{s}: rho {fmt(b4(s, 'rho'))} (within ep. {fmt(b4(s, 'rho_within'))}), V-MC "
                   f"{b4(s, 'gap'):+.0f}" for s in sources)
    return (f"modip_model_diag: {task_name} seeds {','.join(map(str, seeds))}, H={horizon}: held-out obs NMSE "
            f"at k=H (Δs-var / state-var units) {wm}; terminal recall k=1 {tm}; V vs MC (drop) {vm}; {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
