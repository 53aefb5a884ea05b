"""How a line looks in every figure: its family's hue, its actor's line style and marker.

Why (issue 25, part D): a reader tells lines apart by eye before reading a legend. A line is
`family/actor`, the family being `method[variant]` (a sweep's horizon-0 control is a family of its own); light
and dark shades of one colour for two families read as one family, so each family gets one hue of a
qualitative palette, and its actors differ by line style (curves) and marker (points). Within a family the
actor its runs record as the method's product (analysis.episodes.run_records) is drawn solid, its other actors
dashed, dotted, dash-dotted, in name order; where the runs recorded no product (older stores) the actors go in
name order alone. Nothing here knows a method's name: families and actors are read off the labels.
"""
from __future__ import annotations

import dataclasses

import seaborn as sns

STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P")
LINE_WIDTH = 2.0
REFERENCE_WIDTH = 1.0  # a reference (one eval, no online phase): a thin flat line without a band
# tab10's ten hues are told apart at a glance (seaborn's colorblind palette pairs orange with vermillion and pink
# with light pink); the actors' line styles and markers carry the rest. More families take evenly spaced hues.
QUALITATIVE = 10


def split_line(line: str) -> tuple[str, str]:
    """(family, actor) of a label `method[variant]/actor`; a label without an actor is its own family."""
    head, sep, actor = str(line).rpartition("/")
    if not sep or not head or "]" in actor or "=" in actor:
        return str(line), ""
    return head, actor


@dataclasses.dataclass(frozen=True)
class Looks:
    """Per line: its colour (the family's hue), line style and marker (its actor's rank in the family)."""

    colors: dict
    styles: dict
    markers: dict

    def of(self, line: str, reference: bool = False) -> dict:
        """matplotlib keyword arguments for `line` drawn as a curve (thin where it is a reference)."""
        return {"color": self.colors[line], "ls": self.styles[line],
                "lw": REFERENCE_WIDTH if reference else LINE_WIDTH}


def family_colors(families) -> dict:
    """One hue per family, in sorted order."""
    families = sorted(set(families))
    n = max(len(families), 1)
    colors = sns.color_palette("tab10" if n <= QUALITATIVE else "husl", n)
    return {f: colors[i] for i, f in enumerate(families)}


def looks(lines, products: dict | None = None) -> Looks:
    """Looks for `lines`; `products` maps a family to its product actor where its runs recorded one."""
    lines = sorted(set(map(str, lines)))
    products = products or {}
    parts = {line: split_line(line) for line in lines}
    hue = family_colors(f for f, _ in parts.values())
    rank = {}
    for family in sorted({f for f, _ in parts.values()}):
        actors = sorted({a for f, a in parts.values() if f == family})
        product = products.get(family)
        ordered = ([product] if product in actors else []) + [a for a in actors if a != product]
        rank.update({(family, a): i for i, a in enumerate(ordered)})
    return Looks(colors={ln: hue[parts[ln][0]] for ln in lines},
                 styles={ln: STYLES[rank[parts[ln]] % len(STYLES)] for ln in lines},
                 markers={ln: MARKERS[rank[parts[ln]] % len(MARKERS)] for ln in lines})


def family_products(records, lines) -> dict:
    """{family: product actor} for the families of `lines`, from run records (analysis.episodes.run_records)
    merged with each run's line (a frame of run_id, line); families whose runs recorded none are left out."""
    out = {}
    if records is None or records.empty or lines is None or lines.empty:
        return out
    product = dict(zip(records["run_id"], records["product"]))
    for run_id, line in zip(lines["run_id"], lines["line"]):
        family = split_line(line)[0]
        if isinstance(product.get(run_id), str):
            out.setdefault(family, product[run_id])
    return out


__all__ = ["Looks", "family_colors", "family_products", "looks", "split_line"]
