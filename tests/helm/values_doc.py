"""Read the `# --` documentation comments of values.yaml and render the chart README from them.

A value is documented by a `# -- text` comment on the line(s) right above its key. A key whose
default is a non-empty mapping without its own comment is a group: its children carry the docs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- (?P<text>.*)$")


@dataclass(frozen=True)
class ValueDoc:
    path: str
    description: str
    default: Any


def _lookup(values: Any, path: list[str]) -> Any:
    for key in path:
        values = values[key]
    return values


def documented_values(values_file: Path) -> list[ValueDoc]:
    """Every key of values.yaml in file order with its `# --` description ('' when missing)."""
    values = yaml.safe_load(values_file.read_text())
    docs: list[ValueDoc] = []
    parents: list[tuple[int, str]] = []
    pending: str | None = None
    leaf_indent: int | None = None  # inside a documented leaf's default: not keys of their own
    for line in values_file.read_text().splitlines():
        if doc := _DOC.match(line):
            pending = doc["text"].strip()
            continue
        match = _KEY.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        if leaf_indent is not None and indent > leaf_indent:
            continue
        leaf_indent = None
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = [key for _, key in parents] + [match["key"]]
        default = _lookup(values, path)
        if isinstance(default, dict) and default and pending is None:
            parents.append((indent, match["key"]))  # a group: its children carry the docs
            continue
        docs.append(ValueDoc(".".join(path), pending or "", default))
        pending = None
        leaf_indent = indent
    return docs


def _default_cell(default: Any) -> str:
    text = json.dumps(default, separators=(", ", ": "))
    return f"`{text}`" if len(text) <= 60 else "see values.yaml"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_readme(chart_dir: Path) -> str:
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    rows = [
        f"| `{d.path}` | {_default_cell(d.default)} | {_escape(d.description)} |"
        for d in documented_values(chart_dir / "values.yaml")
    ]
    header = (chart_dir / "README.header.md").read_text().rstrip()
    return (
        f"{header}\n\n"
        f"## Values\n\n"
        f"Chart version `{chart['version']}`, app version `{chart['appVersion']}`, "
        f"Kubernetes `{chart['kubeVersion']}`.\n"
        f"This table is generated from the `# --` comments in `values.yaml`; "
        f"refresh it with `UPDATE_GOLDEN=1 pytest tests/helm`.\n\n"
        f"| Key | Default | Description |\n|-----|---------|-------------|\n"
        + "\n".join(rows)
        + "\n"
    )
