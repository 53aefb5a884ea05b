"""The method contract: every registered method implements it, an incomplete one is caught, what the harness
reads off a class follows from the class (never a flag), and methods are found on disk, a broken one loudly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT


# ---- the method contract -----------------------------------------------------------------------------------
def test_every_registered_method_implements_the_declared_contract():
    from methods.base import contract_violations
    from methods.registry import registered_methods

    bad = {name: v for name, cls in registered_methods().items() if (v := contract_violations(cls))}
    assert not bad, bad


def test_an_incomplete_method_is_caught():
    from methods.base import Method, MethodContext, TaskSpaces, contract_violations
    from methods.common.normalize import Normalizer
    from methods.common.section import Section

    class Cfg(Section):
        lr: float = 1e-3

    class Incomplete(Method):  # no act, no timed components
        Config = Cfg
        actors = ("pi",)

        def modules(self):
            return {}

    v = contract_violations(Incomplete)
    assert any("'act'" in x for x in v) and any("'timed_components'" in x for x in v)
    spaces = TaskSpaces(obs_dim=2, act_dim=1, act_low=-np.ones(1), act_high=np.ones(1), max_episode_steps=10)
    with pytest.raises(TypeError, match="abstract"):
        Incomplete(Cfg(), MethodContext(spaces=spaces, normalizer=Normalizer(np.zeros(2), np.ones(2),
                                                                             -np.ones(1), np.ones(1))))

    from methods.on_policy import OnPolicy

    class OnPolicyWithoutRollouts(OnPolicy):
        Config = Cfg

        def act(self, obs, actor, state, eval_mode):
            return obs, {}

        def modules(self):
            return {}

        def timed_components(self, batch_size=1):
            return {}

    v = contract_violations(OnPolicyWithoutRollouts)
    assert {x for x in v if "rollout" in x} == {f"abstract hook '{h}' is not implemented"
                                                for h in ("act_rollout", "rollout_size", "update_rollout")}


def test_every_method_declares_in_its_config_what_its_class_says():
    """methods/catalog reads a method from its config.py alone (no torch): the same name, section class, actors
    and DP-ness as its class, and the same summary (its package's docstring)."""
    import sys

    from methods.catalog import method_cards, method_packages
    from methods.dp_method import DPMethod
    from methods.registry import registered_methods

    classes, cards = registered_methods(), method_cards()
    assert set(cards) == set(classes) == set(method_packages())
    for name, cls in classes.items():
        card = cards[name]
        assert card.Config is cls.Config, name
        assert card.actors == cls.actors, name
        assert list(card.selection) == list(cls.actors), name  # every actor says how it picks its action
        assert card.uses_dp == cls.uses_dp == issubclass(cls, DPMethod), name
        assert card.uses_pretrained_dp == cls.uses_pretrained_dp, name
        assert card.doc == sys.modules[cls.__module__].__doc__, name


def test_a_config_without_a_valid_selection_is_refused():
    """SELECTION must name every actor, each with a rule of the vocabulary (methods/common/selection.py)."""
    import types

    from methods.catalog import _card
    from methods.common.section import Section
    from methods.common.selection import DP_SAMPLE

    class Cfg(Section):
        presets = {}

    def module(selection):
        mod = types.ModuleType("fake_config")
        Cfg.__module__ = mod.__name__
        mod.Cfg, mod.ACTORS, mod.USES_DP = Cfg, ("dp", "plan"), True
        if selection is not None:
            mod.SELECTION = selection
        return mod

    assert _card("fake", module({"dp": DP_SAMPLE, "plan": "noise-free plan"})).selection["plan"] == "noise-free plan"
    for bad in (None, {"dp": DP_SAMPLE}, {"dp": DP_SAMPLE, "plan": "best guess"}):
        with pytest.raises(TypeError, match="SELECTION"):
            _card("fake", module(bad))


def test_the_catalog_loads_no_method_and_no_torch():
    """The catalog runs each config.py alone, not its package (which imports the method and torch); a package
    imported afterwards takes the same config module."""
    code = ("import sys; import methods.catalog as c; c.method_card('modip'); "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'torch'], 'torch'; "
            "assert 'methods.modip' not in sys.modules and 'methods.modip.config' in sys.modules; "
            "import methods.registry as r; assert r.get_method_class('modip').Config is c.method_card('modip').Config")
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    import methods.catalog
    from methods.common.section import MethodError  # the registry's error: one class for an unknown method

    with pytest.raises(MethodError, match=r"unknown method 'modp' \(did you mean 'modip'\?\)"):
        methods.catalog.method_card("modp")


def test_the_loop_and_phases_follow_from_the_class():
    from methods.base import Method, RolloutKind
    from methods.dp_method import DPMethod
    from methods.on_policy import OnPolicy
    from methods.registry import registered_methods

    for cls in registered_methods().values():
        assert isinstance(cls.rollout_kind, RolloutKind)
        assert cls.pretrains_offline == (cls.pretrain is not Method.pretrain)
        assert cls.uses_dp == cls.uses_pretrained_dp == issubclass(cls, DPMethod)
        expected = (RolloutKind.ON_POLICY if issubclass(cls, OnPolicy) else
                    RolloutKind.OFF_POLICY if cls.update is not Method.update else RolloutKind.NONE)
        assert cls.rollout_kind is expected
    kinds = {n: (c.rollout_kind.value, c.pretrains_offline, c.common_start_is_product)
             for n, c in registered_methods().items()}
    assert kinds["bc_dp"] == ("none", False, True)  # neither pretrain nor update: the common start is its product
    assert kinds["bc_gauss"] == ("none", True, False)
    assert kinds["dppo"] == ("on_policy", False, False)
    assert kinds["dsrl"] == ("off_policy", False, False)
    assert kinds["modip"] == ("off_policy", True, False)


def test_a_method_cannot_declare_what_follows_from_its_class():
    from methods.base import Method

    with pytest.raises(TypeError, match="rollout_kind.*follow from its class"):
        class Flagged(Method):
            rollout_kind = "off_policy"


def test_methods_are_found_on_disk_and_a_broken_one_is_an_error(tmp_path):
    """Every folder of methods/ with a config.py is a method package; one that fails to import stops the
    registry with its error instead of being skipped (checked on a copy of methods/, never the tree itself)."""
    from methods.registry import method_packages, registered_methods

    assert set(method_packages()) == set(registered_methods())
    shutil.copytree(ROOT / "methods", tmp_path / "methods", ignore=shutil.ignore_patterns("__pycache__"))
    broken = tmp_path / "methods" / "zz_broken"
    broken.mkdir()
    (broken / "config.py").write_text("")
    (broken / "__init__.py").write_text("raise ImportError('zz_broken cannot import')\n")
    code = "import methods.registry as r; print(sorted(r.registered_methods()))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode != 0 and "zz_broken cannot import" in out.stderr
    shutil.rmtree(broken)  # without it, the copy registers every method
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == str(sorted(registered_methods())), out.stderr
