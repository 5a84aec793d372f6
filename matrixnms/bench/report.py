"""Ratios within a group, the generic target check, and the report: table and plot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..scenes import MASK_HEIGHT, MASK_WIDTH
from .cases import NUM_CLASSES
from .places import place_name


# Per family: (column, role of the reference row, kind). "speedup" = reference time / row time (x faster);
# "multiple" = row time / reference time (x the floor).
COMPARISONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "masks": (("vs paper", "paper", "speedup"), ("vs greedy", "greedy", "speedup"), ("x floor", "floor", "multiple")),
    "boxes": (("vs greedy", "greedy", "speedup"),),
    "mask_iou": (("vs pycocotools", "reference", "speedup"),),
    "masks_to_boxes": (("vs NumPy any", "reference", "speedup"),),
}


def _peer(row: dict[str, Any], group: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    """The row of ``role`` that ``row`` is compared with: same library and device, else same device.

    A ratio never mixes devices: a CUDA row is compared with the CUDA transcription / greedy, a CPU row with
    a CPU one. The floor (a CPU memory pass) only serves CPU rows; the utilities' references (pycocotools,
    NumPy) serve every row.
    """
    peers = [r for r in group if r["role"] == role]
    if role == "reference":
        return peers[0] if peers else None
    if role == "floor":
        return peers[0] if peers and row["device"] == "cpu" else None
    for same in (lambda r: r["place"] == row["place"], lambda r: r["device"] == row["device"]):
        matching = [r for r in peers if same(r)]
        if matching:
            return matching[0]
    return None


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``ratios`` {column: value} and ``compared_with`` {column: method} to every record, per group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    for group in groups.values():
        for r in group:
            r["ratios"], r["compared_with"] = {}, {}
            for column, role, kind in COMPARISONS[r["family"]]:
                peer = _peer(r, group, role)
                if peer is None or r["median_s"] <= 0 or peer["median_s"] <= 0:
                    continue
                ratio = peer["median_s"] / r["median_s"] if kind == "speedup" else r["median_s"] / peer["median_s"]
                r["ratios"][column] = ratio
                r["compared_with"][column] = peer["method"]
    return records


@dataclass(frozen=True)
class Target:
    """A performance target: ``value(rows)`` of one group compared with ``goal``."""

    text: str
    family: str
    n: int
    num_classes: int | None
    row: Callable[[dict[str, Any]], bool]  # the row under test
    reference: Callable[[dict[str, Any]], bool] | None  # the row it is compared with; None: absolute time
    goal: float
    kind: str  # "speedup >=", "multiple <=", "ms <"


def check_targets(records: list[dict[str, Any]], targets: Iterable[Target]) -> list[dict[str, Any]]:
    """Every one of ``targets`` whose rows were measured (at the standard 200x336), with its value and verdict."""
    out = []
    for t in targets:
        group = [r for r in records if r["family"] == t.family and r["n"] == t.n and r["num_classes"] == t.num_classes
                 and (r["height"], r["width"]) == (MASK_HEIGHT, MASK_WIDTH)]
        row = next((r for r in group if t.row(r)), None)
        ref = None if t.reference is None else next((r for r in group if t.reference(r)), None)
        if row is None or (t.reference is not None and ref is None):
            continue
        if t.kind == "ms <":
            value = row["median_s"] * 1e3
            passed = value < t.goal
        elif t.kind.startswith("speedup"):
            value = ref["median_s"] / row["median_s"]
            passed = value >= t.goal if t.kind.endswith(">=") else value > t.goal
        else:
            value = row["median_s"] / ref["median_s"]
            passed = value <= t.goal
        out.append({"target": t.text, "group": row["group"], "method": row["method"],
                    "reference": None if ref is None else ref["method"], "kind": t.kind, "goal": t.goal,
                    "value": value, "passed": passed})
    return out


def _format_time(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _format_ratio(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "multiple":
        return f"{value:.1f}x"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def format_table(records: list[dict[str, Any]], skipped: list[tuple[str, str, str]] = (),
                 targets: list[dict[str, Any]] = ()) -> str:
    """Per-group tables of medians and ratios, the checked ``targets`` (of :func:`check_targets`), and what
    every method times."""
    lines: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    for name, group in groups.items():
        family = group[0]["family"]
        columns = [c for c, _, _ in COMPARISONS[family]]
        kinds = {c: k for c, _, k in COMPARISONS[family]}
        header = ["method", "input", "IoU", "threads", "median ms", "rounds"] + columns
        rows = []
        for r in sorted(group, key=lambda r: r["median_s"]):
            title = r["title"] + (" [auto]" if r.get("auto") else "")
            rows.append([title, place_name(r["library"], r["device"]), "incl." if r["includes_iou"] else "-",
                         r["threads"], _format_time(r["median_s"]), str(r["rounds"])]
                        + [_format_ratio(r.get("ratios", {}).get(c), kinds[c]) for c in columns])
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append("")
        lines.append(name)
        lines.append("  ".join(h.ljust(w) if i < 4 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in rows:
            lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    lines.append("")
    lines.append("Ratios: 'vs paper' / 'vs greedy' = time of the paper's transcription / of greedy NMS, in the same "
                 "library and on the same device, divided by the row's time (x faster; >1 is faster). 'x floor' = "
                 "row time / time of one np.packbits pass over the masks. 'vs pycocotools' / 'vs NumPy any' = the "
                 "reference's time / the row's time. [auto] marks the path backend='auto' picks for that input. "
                 "'IoU incl.': the figure includes computing the IoU from the masks or boxes.")
    if targets:
        lines.append("")
        lines.append("Targets (issue 4), each from one group of this run:")
        for t in targets:
            unit = " ms" if t["kind"] == "ms <" else "x"
            verdict = "PASS" if t["passed"] else "MISS"
            lines.append(f"  [{verdict}] {t['target']}: measured {t['value']:.2f}{unit} (goal {t['kind']} {t['goal']:g}"
                         f"{unit})")
    lines.append("")
    lines.append("What each method times:")
    seen = set()
    for r in records:
        if r["method"] + r["family"] in seen:
            continue
        seen.add(r["method"] + r["family"])
        lines.append(f"  {r['family']:>14} {r['title']}: {r['what']}; threads: {r['threads']}")
    if skipped:
        # one line per (method, reason), with the groups it applies to counted
        reasons: dict[tuple[str, str], int] = {}
        for _, title, reason in skipped:
            reasons[title, reason] = reasons.get((title, reason), 0) + 1
        lines.append("")
        lines.append("Not run here:")
        for (title, reason), count in reasons.items():
            lines.append(f"  {title}: {reason} ({count} case{'s' if count > 1 else ''})")
    return "\n".join(lines)


_PLOT_PANELS = (
    ("masks", None, "Mask Matrix NMS, class-agnostic"),
    ("masks", NUM_CLASSES, f"Mask Matrix NMS, {NUM_CLASSES} classes"),
    ("boxes", None, "Box NMS, class-agnostic"),
    ("boxes", NUM_CLASSES, f"Box NMS, {NUM_CLASSES} classes"),
)
# One colour and line style per method, the same in every panel: the library's paths solid and strong,
# the paper's code dashed greens, greedy NMS dash-dot, the library's baselines dotted.
_STYLE: dict[str, tuple[str, str, str]] = {  # key: (colour, line style, marker)
    "numpy-numba": ("#1f5fbf", "-", "o"), "numpy-generic": ("#7fb2f0", "-", "o"),
    "torch-numba": ("#d62728", "-", "s"), "torch-torch": ("#ff7f0e", "-", "s"),
    "torch-generic": ("#ffbb78", "-", "s"),
    "torch-cuda-torch": ("#7b2cbf", "-", "D"), "torch-cuda-generic": ("#c39bd3", "-", "D"),
    "cupy-cupy": ("#8c564b", "-", "P"), "cupy-generic": ("#c49c94", "-", "P"),
    "paper-numpy": ("#2ca02c", "--", "^"), "paper-torch": ("#98df8a", "--", "^"),
    "paper-torch-cuda": ("#556b2f", "--", "^"),
    "greedy-numpy": ("#555555", "-.", "v"), "greedy-torch": ("#a0a0a0", "-.", "v"),
    "greedy-torch-cuda": ("#777777", "-.", "v"),
    "mask_nms-numpy": ("#e377c2", ":", "x"), "mask_nms-torch": ("#f7b6d2", ":", "x"),
    "mask_nms-torch-cuda": ("#b5479a", ":", "x"),
    "nms-numpy": ("#e377c2", "-.", "x"), "nms-torch": ("#f7b6d2", "-.", "x"), "nms-torch-cuda": ("#b5479a", "-.", "x"),
    "batched_nms-numpy": ("#e377c2", "-.", "x"), "batched_nms-torch": ("#f7b6d2", "-.", "x"),
    "batched_nms-torch-cuda": ("#b5479a", "-.", "x"),
    "soft_nms-numpy": ("#17becf", ":", "+"), "soft_nms-torch": ("#9edae5", ":", "+"),
    "soft_nms-torch-cuda": ("#0f7f8a", ":", "+"),
}


def plot(records: list[dict[str, Any]], path: str, machine: dict[str, Any] | None = None) -> None:
    """Time vs N (log-log) per method: masks and boxes, class-agnostic and labelled; the read floor dashed.

    One row per family (masks, boxes), one column per labelling; each row has one legend, and a method has the
    same colour in every panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

    panels = [p for p in _PLOT_PANELS if any(r["family"] == p[0] and r["num_classes"] == p[1] for r in records)]
    if not panels:
        raise ValueError("no mask or box results to plot")
    families = [f for f in ("masks", "boxes") if any(p[0] == f for p in panels)]
    fig, axes = plt.subplots(len(families), 2, figsize=(15, 5.2 * len(families)), squeeze=False)
    for row, family in enumerate(families):
        handles: dict[str, Any] = {}
        for col, num_classes in enumerate((None, NUM_CLASSES)):
            ax = axes[row, col]
            title = next((t for f, c, t in _PLOT_PANELS if f == family and c == num_classes), "")
            mine = [r for r in records if r["family"] == family and r["num_classes"] == num_classes]
            if not mine:
                ax.axis("off")
                continue
            by_method: dict[str, list[dict[str, Any]]] = {}
            for r in mine:
                by_method.setdefault(r["method"], []).append(r)
            for key, rs in by_method.items():
                rs = sorted(rs, key=lambda r: r["n"])
                ns, ms = [r["n"] for r in rs], [r["median_s"] * 1e3 for r in rs]
                role = rs[0]["role"]
                if role == "floor":
                    label = "read floor: np.packbits over the N*H*W mask bytes"
                    (line,) = ax.plot(ns, ms, color="black", linestyle=(0, (6, 3)), linewidth=2.6, label=label)
                else:
                    label = rs[0]["title"] + (" [auto]" if rs[0].get("auto") else "")
                    color, linestyle, marker = _STYLE.get(key, ("#333333", "-", "o"))
                    (line,) = ax.plot(ns, ms, color=color, linestyle=linestyle, marker=marker, markersize=5.5,
                                      linewidth=2.6 if role == "library" else 1.6, label=label)
                handles.setdefault(label, line)
            ax.set_xscale("log")
            ax.set_yscale("log")
            sizes = sorted({r["n"] for r in mine})
            ax.xaxis.set_major_locator(FixedLocator(sizes))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            # plain numbers at 1-2-5 steps: readable whether a panel spans one decade or five
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("N (candidates)")
            ax.set_ylabel("median time per call (ms)")
            if family == "masks":
                title += f", {mine[0]['height']}x{mine[0]['width']} masks"
            elif family == "boxes":
                title += ", 800x1344 image"
            ax.set_title(title, fontsize=12)
            ax.grid(True, which="major", alpha=0.45)
            ax.grid(True, which="minor", axis="y", alpha=0.15)
        # the row's legend, right of its panels, sorted as the lines' time at the largest N
        order = sorted(handles.items(), key=lambda kv: -kv[1].get_ydata()[-1])
        axes[row, 1].legend([h for _, h in order], [k for k, _ in order], loc="center left",
                            bbox_to_anchor=(1.02, 0.5), fontsize=9, frameon=False,
                            title="sorted by time at the largest N", title_fontsize=9)
    if machine:
        desc = (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; numpy {machine.get('numpy', '?')}"
                + (f", torch {machine['torch']}" if "torch" in machine else "")
                + (f", numba {machine['numba']}" if "numba" in machine else "")
                + (f"; GPU {machine['gpu']}" if "gpu" in machine else "")
                + ". Every time includes sorting and the IoU; solid lines: matrixnms.matrix_nms, [auto]: the "
                  "default path.")
        fig.suptitle(desc, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if machine else None)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
