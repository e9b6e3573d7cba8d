#!/usr/bin/env python3
"""Draws docs/benchmarks-scaling.svg from docs/benchmarks-scaling.csv (standard library only).

Each CSV row: series,tasks,wall_ms_a_task,server_cpu_ms_a_task (from `cargo bench --bench
targets` with CLAUDE_WORKER_BENCH_CSV). The x axis is the graph size on a log scale, the y axis
milliseconds a task; one line a series and measure.

    python3 docs/plot-scaling.py < docs/benchmarks-scaling.csv > docs/benchmarks-scaling.svg
"""
import csv
import math
import sys

W, H, LEFT, RIGHT, TOP, BOTTOM = 680, 380, 70, 220, 34, 320
COLORS = ["#c0392b", "#2471a3", "#7d3c98", "#1e8449"]

rows = [r for r in csv.reader(sys.stdin) if r and not r[0].startswith("#")]
series = {}
for name, tasks, wall, cpu in rows:
    series.setdefault(name, []).append((int(tasks), float(wall), float(cpu)))
sizes = sorted({t for points in series.values() for t, _, _ in points})
ymax = max(max(w, c) for points in series.values() for _, w, c in points) * 1.1
lo, hi = math.log10(min(sizes)), math.log10(max(sizes))


def x(t):
    return LEFT + (math.log10(t) - lo) / ((hi - lo) or 1) * (W - LEFT - RIGHT)


def y(v):
    return BOTTOM - v / ymax * (BOTTOM - TOP)


out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{LEFT}" y="20" font-size="14">Cost a task against graph size (layers of 99 + a join, cap 100)</text>',
       f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{W - RIGHT}" y2="{BOTTOM}" stroke="black"/>',
       f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="black"/>',
       f'<text x="{(LEFT + W - RIGHT) / 2 - 40}" y="{H - 20}">tasks in the graph</text>',
       f'<text x="12" y="{TOP - 8}">ms a task</text>']
for t in sizes:
    out.append(f'<line x1="{x(t):.1f}" y1="{BOTTOM}" x2="{x(t):.1f}" y2="{BOTTOM + 5}" stroke="black"/>'
               f'<text x="{x(t) - 18:.1f}" y="{BOTTOM + 20}">{t:,}</text>')
step = 2 if ymax < 16 else 5
for v in range(0, int(ymax) + 1, step):
    out.append(f'<line x1="{LEFT - 5}" y1="{y(v):.1f}" x2="{W - RIGHT}" y2="{y(v):.1f}" stroke="#ddd"/>'
               f'<text x="{LEFT - 28}" y="{y(v) + 4:.1f}">{v}</text>')
legend_y = TOP + 10
for i, (name, points) in enumerate(series.items()):
    color = COLORS[i % len(COLORS)]
    points.sort()
    for measure, index, dash in (("wall", 1, "6,4"), ("server CPU", 2, "")):
        path = " ".join(f"{x(p[0]):.1f},{y(p[index]):.1f}" for p in points)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dashes}/>')
        for p in points:
            out.append(f'<circle cx="{x(p[0]):.1f}" cy="{y(p[index]):.1f}" r="3" fill="{color}"/>')
        out.append(f'<line x1="{W - RIGHT + 15}" y1="{legend_y}" x2="{W - RIGHT + 40}" y2="{legend_y}" '
                   f'stroke="{color}" stroke-width="2"{dashes}/>'
                   f'<text x="{W - RIGHT + 45}" y="{legend_y + 4}">{name}: {measure}</text>')
        legend_y += 18
out.append("</svg>")
print("\n".join(out))
