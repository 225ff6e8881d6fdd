"""Tables and plots of quality against dimension, one row/line per method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._extras import require

from .significance import Difference

# results: method -> level -> metric -> list of values (one per seed)
Results = Mapping[str, Mapping[int, Mapping[str, Sequence[float]]]]


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _level_table(rows: Mapping[str, Mapping[int, str]], first_column: str, title: str | None) -> str:
    """Markdown: one row per label, one column per level (the union over rows), "–" where a
    row has no cell."""
    levels = sorted({m for cells in rows.values() for m in cells})
    lines = [f"**{title}**", ""] if title else []
    lines.append(f"| {first_column} | " + " | ".join(str(m) for m in levels) + " |")
    lines.append("|---|" + "---|" * len(levels))
    lines += [f"| {label} | " + " | ".join(cells.get(m, "–") for m in levels) + " |" for label, cells in rows.items()]
    return "\n".join(lines)


def markdown_table(results: Results, metric: str = "ndcg@10", title: str | None = None) -> str:
    """A Markdown table: methods as rows, levels as columns, ``mean ± sd`` cells."""
    rows = {}
    for method, per_level in results.items():
        rows[method] = {}
        for m, metrics in per_level.items():
            vals = metrics.get(metric)
            if vals:
                mean, sd = summarize(vals)
                rows[method][m] = f"{mean:.3f}" + (f" ± {sd:.3f}" if len(vals) > 1 else "")
    return _level_table(rows, "method", title)


def plot(results: Results, path: str | Path, metric: str = "ndcg@10", title: str = "") -> Path:
    """PNG of ``metric`` against dimension (log scale); error bars (sd over seeds) only where a
    method has several seeds."""
    require("matplotlib", "plotting results").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for method, per_level in results.items():
        levels = sorted(m for m in per_level if per_level[m].get(metric))
        stats = [summarize(per_level[m][metric]) for m in levels]
        means = [s[0] for s in stats]
        if any(len(per_level[m][metric]) > 1 for m in levels):  # bars only where there are seeds
            ax.errorbar(levels, means, yerr=[s[1] for s in stats], marker="o", capsize=3, label=method)
        else:
            ax.plot(levels, means, marker="o", label=method)
    ax.set_xscale("log", base=2)
    all_levels = sorted({m for per_level in results.values() for m in per_level})
    ax.set_xticks(all_levels)
    ax.set_xticklabels([str(m) for m in all_levels])
    ax.set_xlabel("dimensions kept (prefix length)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it as ``path`` (its folder made if missing) and free it."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def difference_table(rows: Mapping[str, Mapping[int, Difference]], title: str | None = None) -> str:
    """A Markdown table of paired differences, ``mean [low, high]`` per level; bold where the
    interval excludes zero (the sign is supported by the queries), plain where it does not."""
    cells = {label: {m: f"**{d}**" if d.resolved else str(d) for m, d in per_level.items()}
             for label, per_level in rows.items()}
    return _level_table(cells, "difference", title)
