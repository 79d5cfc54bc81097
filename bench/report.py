"""Tables (markdown, printed) and a plot (SVG, no plotting library) from bench/results/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.datapath import summarize


def datapath_table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | conns | plain rps | Switchboard rps | ratio | plain p50 ms | "
        "Switchboard p50 ms | added p50 ms | CPU µs/req plain | CPU µs/req Switchboard |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["summary"]:
        plain, gateway = row["plain"], row["switchboard"]
        lines.append(
            f"| {row['scenario']} | {row['connections']} | {plain['rps']:,.0f} | "
            f"{gateway['rps']:,.0f} | **{row['throughput_ratio']:.2f}** | "
            f"{plain['p50_ms']:.2f} | {gateway['p50_ms']:.2f} | "
            f"**{row['added_p50_ms']:+.2f}** | {plain['cpu_us_per_request']:.0f} | "
            f"{gateway['cpu_us_per_request']:.0f} |")
    return "\n".join(lines)


def process_table(results: dict[str, Any]) -> str:
    lines = ["| scenario | conns | " + " | ".join(
        f"{role} CPU µs/req | {role} RSS MB" for role in _roles(results)) + " |",
             "|---|---|" + "---|---|" * len(_roles(results))]
    for row in results["summary"]:
        cells = []
        for role in _roles(results):
            cells.append(f"{row['switchboard_cpu_us_per_request'].get(role, 0):.0f}")
            cells.append(f"{row['switchboard_rss_mb'].get(role, 0):.0f}")
        lines.append(f"| {row['scenario']} | {row['connections']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def others_table(results: dict[str, Any]) -> str:
    """Other gateways measured in the same runs (bench/others.py); empty when none was."""
    lines = ["| gateway | scenario | conns | rps | ratio to plain Envoy | added p50 ms | "
             "CPU µs/req |", "|---|---|---|---|---|---|---|"]
    for row in results["summary"]:
        for name, other in sorted(row.get("others", {}).items()):
            lines.append(
                f"| {name} | {row['scenario']} | {row['connections']} | {other['rps']:,.0f} | "
                f"**{other['throughput_ratio']:.3f}** | {other['added_p50_ms']:+.2f} | "
                f"{other['cpu_us_per_request']:.0f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _roles(results: dict[str, Any]) -> list[str]:
    return sorted(results["summary"][0]["switchboard_rss_mb"])


def svg(series: list[tuple[str, dict[str, Any]]], metric: str, title: str,
        target: float | None = None) -> str:
    """Grouped bars: one group per scenario/connections, one bar per labelled run."""
    # Runs may measure different scenarios: every scenario any run has, bars where it has it.
    values = [{f"{row['scenario']} c={row['connections']}": row[metric]
               for row in results["summary"]} for _, results in series]
    groups = list(dict.fromkeys(group for run in values for group in run))
    top = max([*(v for run in values for v in run.values()), target or 0]) * 1.15 or 1.0
    width, height, left, bottom = 760, 320, 50, 60
    plot_w, plot_h = width - left - 20, height - bottom - 40
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / len(series)
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">'
             f'{escape(title)}</text>']
    y0 = 30 + plot_h
    parts.append(f'<line x1="{left}" y1="{y0}" x2="{left + plot_w}" y2="{y0}" stroke="#333"/>')
    for tick in range(5):
        value = top * tick / 4
        y = y0 - plot_h * tick / 4
        parts.append(f'<text x="{left - 4}" y="{y + 4}" text-anchor="end">{value:.2f}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" '
                     f'stroke="#ddd"/>')
    if target is not None:
        y = y0 - plot_h * target / top
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" '
                     f'stroke="#c00" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{left + plot_w}" y="{y - 3}" text-anchor="end" fill="#c00">'
                     f'target {target}</text>')
    for g, group in enumerate(groups):
        x_group = left + g * group_w + group_w * 0.1
        for s, run in enumerate(values):
            if group not in run:
                continue
            bar_h = plot_h * max(run[group], 0) / top
            x = x_group + s * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{y0 - bar_h:.1f}" width="{bar_w - 2:.1f}" '
                         f'height="{bar_h:.1f}" fill="{colors[s % len(colors)]}"/>')
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y0 - bar_h - 3:.1f}" '
                         f'text-anchor="middle" font-size="9">{run[group]:.2f}</text>')
        parts.append(f'<text x="{x_group + group_w * 0.4:.1f}" y="{y0 + 15}" '
                     f'text-anchor="middle">{escape(group)}</text>')
    for s, (label, _) in enumerate(series):
        y = height - 32 + 14 * (s // 3)
        x = left + (s % 3) * 230
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" '
                     f'fill="{colors[s % len(colors)]}"/>')
        parts.append(f'<text x="{x + 14}" y="{y + 9}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _numbered(path: Path) -> list[Any]:
    """datapath-9 before datapath-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def write_report(results_dir: Path, output: Path) -> None:
    runs = []
    for path in sorted(results_dir.glob("datapath*.json"), key=_numbered):
        results = json.loads(path.read_text())
        results["summary"] = summarize(results["runs"])
        runs.append((results.get("label") or path.stem, results))
        print(f"## {path.name}: {results.get('label', '')}\n")
        print(datapath_table(results) + "\n")
        print(process_table(results) + "\n")
        if others := others_table(results):
            print(others + "\n")
    if runs:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(svg(runs, "throughput_ratio",
                              "Switchboard throughput / plain Envoy (same run)", 0.5))
        print(f"plot written to {output}")
