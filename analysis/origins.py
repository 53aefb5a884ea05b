"""Where a sweep's numbers came from: the commits its runs ran at and the data they read, and whether they mix.

Why (issue 25, "frozen before it runs"): a reference sweep runs from one commit, so a defect found later means
rerunning everything, never patching a few runs; its report must then refuse a store whose runs mix commits,
ran from a checkout whose tracked files differed from its commit (`git_dirty`), or read different data under one
dataset name. Every run records its commit (the runs row's git_sha), whether its checkout was dirty, and its
dataset's content hash (a sha256 of the dataset's arrays, in its provenance; bench.data's content_hash), read
here through analysis.episodes.run_records. Every report prints them (`origin_lines`); `mbench report
--one-commit` refuses a mix (`check_one_commit`).
"""
from __future__ import annotations

import pandas as pd

UNRECORDED = "not recorded"


class MixedOrigins(ValueError):
    """The runs of a report that must come from one commit and one dataset do not."""


def _commit(value) -> str:
    return value if isinstance(value, str) and value and value != "unknown" else UNRECORDED


def _shas(labels) -> set[str]:
    """The commits of a run's attempts (labels "<sha>" or "<sha>+dirty")."""
    return {_commit(str(label).removesuffix("+dirty")) for label in labels} or {UNRECORDED}


def _dirty(record) -> bool:
    return bool(record.dirty) if record.dirty is not None and record.dirty == record.dirty else False


def _counted(values: pd.Series, short: int | None = None) -> str:
    counts = values.value_counts()
    return ", ".join(f"{k[:short] if short and k != UNRECORDED else k} ({n} run{'s' * (n != 1)})"
                     for k, n in sorted(counts.items()))


def _hashes(group: pd.DataFrame) -> pd.Series:
    return group["dataset_hash"].map(lambda h: h if isinstance(h, str) and h else UNRECORDED)


def mixing(records: pd.DataFrame) -> list[str]:
    """What keeps `records` (analysis.episodes.run_records) from being one commit's runs on one dataset each:
    several commits (over every run and every attempt of a run), a commit not recorded, a dirty checkout, or
    one dataset name with several content hashes. Empty where nothing does."""
    if records.empty:
        return []
    problems = []
    per_run = [(_shas(r.commits) if len(r.commits) else set()) | {_commit(r.commit)} for r in records.itertuples()]
    shas = sorted(set().union(*per_run))
    runs_of = pd.Series([sha for run in per_run for sha in run])
    if len(shas) > 1:
        problems.append(f"runs of {len(shas)} commits: {_counted(runs_of, 12)}")
    elif shas == [UNRECORDED]:
        problems.append(f"no run recorded its commit ({len(records)} runs)")
    resumed = sum(len(run) > 1 for run in per_run)
    if resumed:
        problems.append(f"{resumed} run(s) resumed under another commit than they started from")
    dirty = sum(_dirty(r) or any(str(c).endswith("+dirty") for c in r.commits) for r in records.itertuples())
    if dirty:
        problems.append(f"{dirty} run(s) ran from a checkout whose tracked files differed from its commit")
    for name, group in records.groupby(records["dataset"].fillna(UNRECORDED), sort=True):
        hashes = _hashes(group)
        if hashes.nunique() > 1:
            problems.append(f"dataset {name} read with {hashes.nunique()} content hashes: {_counted(hashes)}")
    return problems


def check_one_commit(records: pd.DataFrame, sweep_id: str) -> None:
    """Raise MixedOrigins (one line: bench/cli prints the first) where `mixing` finds anything."""
    problems = mixing(records)
    if problems:
        raise MixedOrigins(f"sweep '{sweep_id}' is not one commit's runs on one dataset: " + "; ".join(problems)
                           + " (--one-commit refuses it: rerun the sweep from one clean commit)")


def origin_lines(records: pd.DataFrame) -> list[str]:
    """The commits and datasets of `records`, each with its runs, for a report's text."""
    if records.empty:
        return []
    commits = records["commit"].map(_commit)
    dirty = sum(_dirty(r) for r in records.itertuples())
    lines = [f"commits: {_counted(commits, 12)}" + (f"; {dirty} run(s) from a dirty checkout" if dirty else "")]
    for name, group in records.groupby(records["dataset"].fillna(UNRECORDED), sort=True):
        lines.append(f"dataset {name}: content hash {_counted(_hashes(group))}")
    return lines


__all__ = ["MixedOrigins", "check_one_commit", "mixing", "origin_lines"]
