"""The report document, its tables on disk and its guarded sections: shared by every report (`mbench report`,
`mbench ablate`).

Why: each report module builds a Document of blocks that renders to Markdown and HTML alike, saves its tables
beside it and runs each section under a guard that turns a failure into a listed warning. Those pieces live
here, below the report modules, so that no report module imports another (no import cycles).
"""
from __future__ import annotations

import dataclasses
import html
import traceback
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis.data import Notes


# ------------------------------------------------------------------------------------------- the document
@dataclasses.dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "figure", "list"
    text: str = ""
    md: str = ""
    html: str = ""
    path: str = ""
    items: tuple = ()


class Document:
    """Blocks that render both to Markdown and to HTML, so the two reports always say the same thing."""

    def __init__(self, title: str, out_dir: Path):
        self.title = title
        self.out_dir = out_dir
        self.blocks: list[Block] = []
        self.figures: list[Path] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block(f"h{level}", text))

    def para(self, text: str) -> None:
        self.blocks.append(Block("p", text))

    def bullets(self, items) -> None:
        self.blocks.append(Block("list", items=tuple(items)))

    def table(self, frame: pd.DataFrame, md: str, index: bool = True) -> None:
        html_text = frame.to_html(index=index, border=0, na_rep="-") if not frame.empty else "<p><em>no data</em></p>"
        self.blocks.append(Block("table", md=md, html=html_text))

    def figure(self, fig, name: str, caption: str) -> Path:
        path = self.out_dir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(path)
        self.blocks.append(Block("figure", caption, path=str(path.relative_to(self.out_dir))))
        return path

    def links(self, files: dict[str, Path]) -> None:
        self.blocks.append(Block("p", " · ".join(f"[{k}]({p.relative_to(self.out_dir)})" for k, p in files.items()),
                                 html=" · ".join(f'<a href="{html.escape(str(p.relative_to(self.out_dir)))}">'
                                                 f"{html.escape(k)}</a>" for k, p in files.items())))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind.startswith("h"):
                out += ["#" * int(b.kind[1]) + " " + b.text, ""]
            elif b.kind == "p":
                out += [b.text, ""]
            elif b.kind == "list":
                out += [f"- {item}" for item in b.items] + [""]
            elif b.kind == "table":
                out += [b.md, ""]
            elif b.kind == "figure":
                out += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
        return "\n".join(out)

    def html_page(self) -> str:
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            ("<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;"
             "text-align:right}img{max-width:100%}figcaption{font-style:italic;color:#444}</style>"),
            f"</head><body><h1>{html.escape(self.title)}</h1>",
        ]
        for b in self.blocks:
            if b.kind.startswith("h"):
                out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
            elif b.kind == "p":
                out.append(f"<p>{b.html or html.escape(b.text)}</p>")
            elif b.kind == "list":
                out.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b.items) + "</ul>")
            elif b.kind == "table":
                out.append(b.html)
            elif b.kind == "figure":
                out.append(f'<figure><a href="{html.escape(b.path)}"><img src="{html.escape(b.path)}" '
                           f'alt="{html.escape(b.text)}"></a><figcaption>{html.escape(b.text)}</figcaption></figure>')
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, name: str = "report") -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        md_path = self.out_dir / f"{name}.md"
        md_path.write_text(self.markdown())
        (self.out_dir / f"{name}.html").write_text(self.html_page())
        return md_path


def save_table(out_dir: Path, name: str, md: str, tex: str | None = None, csv: pd.DataFrame | None = None):
    folder = out_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"Markdown": folder / f"{name}.md"}
    files["Markdown"].write_text(md + "\n")
    if tex is not None:
        files["LaTeX"] = folder / f"{name}.tex"
        files["LaTeX"].write_text(tex)
    if csv is not None:
        files["CSV"] = folder / f"{name}.csv"
        csv.to_csv(files["CSV"], index=False)
    return files


def section(doc: Document, notes: Notes, name: str):
    """Run one report section; a failure becomes a warning, not a crash."""

    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc is None:
                return False
            plt.close("all")
            last = traceback.extract_tb(tb)[-1]
            notes.warn(f"{name} skipped: {type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})")
            doc.para(f"_{name} could not be made: {type(exc).__name__}: {exc}_")
            return True

    return _Guard()


__all__ = ["Block", "Document", "save_table", "section"]
