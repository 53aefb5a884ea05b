"""The one YAML loader for the files a user hands the harness (sweep and tune files).

Why: a YAML file is data from whoever wrote it. yaml.safe_load runs no code, but it expands aliases, so a 1 KB
file of nested anchors and aliases becomes 10^8 values (an "alias bomb": minutes and gigabytes), and it keeps
the last of two equal keys silently. So this loader bounds the file's size before reading it, refuses any
anchor or alias while composing (before anything is expanded), and refuses a duplicate key, each in one line
naming the file, the line and the fix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: a sweep file is a few KB


class YamlRefused(ValueError):
    """A YAML file this loader will not read; the message is one line (without the file's name)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases (hence no merge keys) and duplicate keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            raise YamlRefused(f"line {event.start_mark.line + 1}: YAML {kind} '{event.anchor}' (anchors and "
                              "aliases are refused: write the values out)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                raise YamlRefused(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (each key once)")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_file(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """The data of a YAML file: no tags, no code, no anchors or aliases, no duplicate keys, at most max_bytes.
    YamlRefused (one line) for any of those, and for text that is not valid YAML; FileNotFoundError if absent."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlRefused(f"{size} bytes, over the limit of {max_bytes} (a sweep file is a few KB)")
    with open(path, "rb") as handle:
        text = handle.read(max_bytes + 1)
    if len(text) > max_bytes:  # grew since the stat
        raise YamlRefused(f"over the limit of {max_bytes} bytes (a sweep file is a few KB)")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except YamlRefused:
        raise
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise YamlRefused(f"not valid YAML ({first})") from None
