"""Provenance: what a run records about where its numbers came from (code, packages, host, data, seeds)."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def git_state() -> tuple[str, bool]:
    """(HEAD's sha, whether tracked files differ from it) of the project's checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or "unknown"
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "unknown", False
    return sha, dirty


def commit_label(sha: str, dirty: bool) -> str:
    """One attempt's code as a run records it among its commits: the sha, "+dirty" where tracked files differed."""
    return f"{sha}+dirty" if dirty else sha


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "gymnasium", "mujoco", "minari", "gymnasium-robotics", "robosuite", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def now() -> str:
    """UTC now, ISO format, to the second."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
