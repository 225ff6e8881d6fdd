"""What a benchmark run found, as a table, JSON and a plot a person reads in a second."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .measure import MethodResult, Point

#: below this many vectors an exact scan or a plain graph is usually the better choice: a
#: funnel's stages cost more than they save (quickstart and bench say so in their reports)
FUNNEL_PAYS_FROM = 100_000


@dataclass
class BenchReport:
    n: int
    sample: int
    dim: int
    queries_source: str
    targets: tuple[float, ...]
    k: int
    threads: int
    methods: list[MethodResult]
    stage_seconds: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it was not run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self, target: float) -> list[tuple[MethodResult, Point]]:
        """Each method's chosen setting at ``target``, fastest first."""
        found = [(m, p) for m in self.methods if (p := m.chosen(target)) is not None]
        return sorted(found, key=lambda mp: mp[1].p50_ms)

    def verdict(self, target: float) -> str:
        """One sentence: the fastest method at ``target``, and what the funnel's size means."""
        rows = self.rows(target)
        if not rows:
            return f"No method qualified for recall@{self.k} {target}."
        best, point = rows[0]
        text = f"Fastest at recall@{self.k} >= {target}: {best.method} ({point.p50_ms:.3f} ms per query)."
        funnel = [(m, p) for m, p in rows if m.method.startswith("funnel")]
        if funnel and funnel[0][0] is not best:
            text += f" The fastest funnel ({funnel[0][0].method}) takes {funnel[0][1].p50_ms / point.p50_ms:.1f}x as long."
        if self.sample < FUNNEL_PAYS_FROM:
            text += (f" At {self.sample:,} vectors a funnel's stages cost about what they save: it pays from about "
                     f"{FUNNEL_PAYS_FROM:,}, where an exact scan or a graph falls behind.")
        return text

    def table(self) -> str:
        lines = [f"{self.sample:,} of {self.n:,} vectors x {self.dim}; {self.queries_source}; recall@{self.k} against "
                 "exact full-dimension search. A setting qualifies for a target when its recall on the tuning "
                 "queries promises the target on new queries (the funnel tuner's rule, for every method); rows "
                 "marked * still fell short on the test queries. p50 / p95: one query per call on one thread; "
                 f"batch QPS: one call with {self.threads} threads."]
        for target in self.targets:
            lines += ["", f"### recall@{self.k} >= {target}", "",
                      "| method | setting | test recall | p50 ms | p95 ms | batch QPS | build s | bytes/vector |",
                      "|---|---|---|---|---|---|---|---|"]
            for m, p in self.rows(target):
                short = "*" if p.recall < target else ""
                lines.append(f"| {m.method} | {p.setting} | {p.recall:.4f}{short} | {p.p50_ms:.3f} | {p.p95_ms:.3f} | "
                             f"{p.batch_qps:.0f} | {m.build_seconds:.1f} | {m.bytes_per_vector:.0f} |")
            missing = [m.method for m in self.methods if m.chosen(target) is None]
            if missing:
                lines.append(f"\nNo setting qualified: {', '.join(missing)}.")
            lines.append("\n" + self.verdict(target))
        notes = [f"- {m.method}: {m.note}" for m in self.methods if m.note]
        notes += [f"- {name}: not run ({why})" for name, why in self.skipped.items()]
        if notes:
            lines += ["", "Notes:", ""] + notes
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Test recall against single-thread QPS: 1 − recall on a log axis (so 0.99 and 0.999
        are far apart, where the targets live), one line per method through its Pareto front,
        the targets drawn and labelled."""
        from .._extras import require
        require("matplotlib", "plotting the benchmark").use("Agg")
        import matplotlib.pyplot as plt
        from ..evaluation.report import save_figure

        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
        floor = 1e-4
        for m in self.methods:
            points = sorted(((max(1 - p.recall, floor), 1e3 / p.mean_ms) for p in m.points), key=lambda t: (t[0], -t[1]))
            front, best = [], 0.0
            for miss, qps in points:  # fewest misses first: a point is on the front if faster than all before it
                if qps > best:
                    front.append((miss, qps))
                    best = qps
            line, = ax.plot([x for x, _ in front], [y for _, y in front], marker="o", ms=4, label=m.method)
            ax.scatter([x for x, _ in points], [y for _, y in points], s=8, alpha=0.25, color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()  # better recall to the right
        ax.set_xlim(0.2, floor * 0.8)
        ax.set_xlabel(f"1 − recall@{self.k} on the test queries (log; right is better)")
        ax.set_ylabel("queries per second, one query per call, 1 thread (log)")
        ax.set_title(f"{self.sample:,} vectors x {self.dim}: the Pareto front of each method", fontsize=10)
        for t in self.targets:
            ax.axvline(1 - t, color="grey", lw=0.8, ls="--")
            ax.text(1 - t, ax.get_ylim()[1], f" recall {t}", rotation=90, va="top", ha="right", fontsize=7,
                    color="grey")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
        return save_figure(fig, path)
