"""Import shims that let robomimic 0.3.0 load on this project's dependency set.

Why: robomimic is installed with `--no-deps` (the Makefile says why), and two of its imports would otherwise fail
for reasons that have nothing to do with low-dim data:

- `torchvision` ops. A torchvision wheel built for another torch (e.g. a CUDA build next to a CPU torch) fails
  to load its C++ extension; its Python side then registers meta kernels for `torchvision::nms` and
  `torchvision::qnms`, and the import dies with "operator torchvision::nms does not exist". robomimic only
  imports torchvision for image encoders we never build. Defining the two schemas (no kernels) lets the import
  finish; calling either op would still fail loudly, which is what we want.
- `mujoco_py`. `robomimic.envs.env_robosuite` does `import mujoco_py` at module level, only to name
  `mujoco_py.builder.MujocoException` as the exception its rollouts catch. robosuite >= 1.4 runs on the
  `mujoco` bindings and never raises it, so a stub module whose exception class nothing raises is exact.

`install()` is idempotent and changes nothing when the real packages import fine.
"""
from __future__ import annotations

import importlib.util
import sys
import types

_LIBRARIES: list = []  # keep torch.library.Library objects alive: dropping one unregisters its schemas


def torchvision_op_stubs() -> bool:
    """Define the `torchvision::nms` and `::qnms` schemas if torchvision is present and they are missing.

    Returns True if stubs were defined."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - resolves only if the op is registered
        return False
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(lib)
    return True


class MujocoException(Exception):
    """Stand-in for `mujoco_py.builder.MujocoException`; the `mujoco` bindings never raise it."""


def mujoco_py_stub() -> bool:
    """Put a minimal `mujoco_py` module in sys.modules if the real one is absent. Returns True if stubbed."""
    if "mujoco_py" in sys.modules or importlib.util.find_spec("mujoco_py") is not None:
        return False
    mod = types.ModuleType("mujoco_py")
    mod.__doc__ = "stub installed by bench.tasks.shims: robomimic names mujoco_py.builder.MujocoException only"
    builder = types.ModuleType("mujoco_py.builder")
    builder.MujocoException = MujocoException
    mod.builder = builder
    mod.__mbench_stub__ = True
    sys.modules["mujoco_py"] = mod
    sys.modules["mujoco_py.builder"] = builder
    return True


def install() -> dict[str, bool]:
    """Install both shims (each only where needed); returns which ones were installed now."""
    return {"torchvision_ops": torchvision_op_stubs(), "mujoco_py": mujoco_py_stub()}
