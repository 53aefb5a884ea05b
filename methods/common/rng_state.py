"""A numpy Generator's state as plain strings, and back: what the replay buffer checkpoints of its sampling RNG.

Why: checkpoints are loaded with torch.load(weights_only=True), which takes plain data only; PCG64's 128-bit
state does not fit a tensor, so it travels as decimal strings.
"""
from __future__ import annotations

import numpy as np


def rng_state_to_plain(rng: np.random.Generator) -> dict[str, str]:
    st = rng.bit_generator.state
    return {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]),
            "has_uint32": str(st["has_uint32"]), "uinteger": str(st["uinteger"])}


def rng_from_plain(d: dict[str, str]) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = {"bit_generator": "PCG64", "state": {"state": int(d["state"]), "inc": int(d["inc"])},
                "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}
    return np.random.Generator(bg)
