"""Which charts a run has, in which order, and what each one draws: one place for the dashboard (grid or one
chart at a time), the compare screen and ``gpt-console plot``.

``run_specs(view)`` builds the specs once (they reference the view's live Series); ``sync_specs`` refreshes
what changes besides the series (titles, resume lines, alerts, one memory line per rank) and must be called
under the view's lock before the charts redraw.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_trainer.app.chart_names import CHART_NAMES
from tui_trainer.app.chart_render import PALETTE, ChartSpec, Line
from tui_trainer.app.run_view import HELLASWAG_GPT2_124M, HELLASWAG_RANDOM, RunView

HELLASWAG_REFERENCES = [(HELLASWAG_RANDOM, "random", (150, 150, 150)),
                        (HELLASWAG_GPT2_124M, "GPT-2 124M", (90, 210, 120))]
HELLASWAG_YLIM = (0.2, 0.32)


@dataclass(frozen=True)
class ChartInfo:
    id: str            # widget id on the dashboard ("chart-loss")
    name: str          # what `gpt-console plot --metric` and the compact mode call it
    title: str
    empty: str         # shown until the first point arrives


CHARTS: tuple[ChartInfo, ...] = (
    ChartInfo("chart-loss", "loss", "loss", "waiting for the first step..."),
    ChartInfo("chart-lr", "lr", "learning rate", "waiting for the first step..."),
    ChartInfo("chart-hellaswag", "hellaswag", "HellaSwag acc_norm", "no HellaSwag evaluation yet"),
    ChartInfo("chart-toks", "toks", "tok/s", "waiting for the first step..."),
    ChartInfo("chart-grad", "grad", "grad norm", "waiting for the first step..."),
    ChartInfo("chart-memory", "memory", "memory (GiB)", "no system figures yet (system.metrics_seconds)"),
)
assert tuple(info.name for info in CHARTS) == CHART_NAMES, "chart_names.CHART_NAMES must list CHARTS in order"
_BY_ID = {info.id: info for info in CHARTS}
_BY_NAME = {info.name: info for info in CHARTS}


def chart_info(key: str) -> ChartInfo:
    """By widget id or by name; KeyError names the choices."""
    info = _BY_ID.get(key) or _BY_NAME.get(key)
    if info is None:
        raise KeyError(f"no chart {key!r}; choose from {', '.join(CHART_NAMES)}")
    return info


def memory_empty_message(trainer: str) -> str:
    """What the empty memory chart says: the one-file twin never reports system figures, so "yet" would mislead."""
    if trainer == "onefile":
        return 'the one-file trainer reports no system figures (launch.trainer = "train" does)'
    return chart_info("chart-memory").empty


def next_chart(current: str, step: int = 1, ids: tuple[str, ...] | None = None) -> str:
    """The chart id ``step`` places after ``current``, wrapping (one chart at a time)."""
    order = ids or tuple(info.id for info in CHARTS)
    i = order.index(current) if current in order else 0
    return order[(i + step) % len(order)]


def run_specs(view: RunView, names: tuple[str, ...] = CHART_NAMES) -> dict[str, ChartSpec]:
    """Chart id -> spec for ``names`` (default: every chart), in catalogue order."""
    s = view.series
    builders = {
        "loss": lambda: ChartSpec("loss", [Line("train", s["train_loss"], PALETTE[0]),
                                           Line("val", s["val_loss"], PALETTE[1], sparse=True)]),
        # A schedule is drawn as it is: smoothing would round off the warmup peak.
        "lr": lambda: ChartSpec("learning rate", [Line("lr", s["lr"], PALETTE[2], smooth=False)]),
        "hellaswag": lambda: ChartSpec("HellaSwag acc_norm", [Line(
            "acc_norm ± 95 %", s["hellaswag"], PALETTE[3], sparse=True,
            band=(s["hellaswag_lo"], s["hellaswag_hi"]))],
            hlines=list(HELLASWAG_REFERENCES), ylim=HELLASWAG_YLIM),
        "toks": lambda: ChartSpec("tok/s", [Line("tok/s", s["tok_per_s"], PALETTE[5])]),
        "grad": lambda: ChartSpec("grad norm", [Line("grad norm", s["grad_norm"], PALETTE[4])]),
        "memory": lambda: ChartSpec("memory (GiB)", []),
    }
    specs = {chart_info(name).id: builders[chart_info(name).name]() for name in names}
    sync_specs(specs, view)
    return specs


def sync_specs(specs: dict[str, ChartSpec], view: RunView) -> None:
    """Bring what is not a Series up to date. Call under ``view.lock``."""
    resumes = view.resume_steps()
    for spec in specs.values():
        spec.resume_steps = resumes
    loss = specs.get("chart-loss")
    if loss is not None:
        loss.alerts = [(a.step, a.kind) for a in view.alerts]
    hellaswag = specs.get("chart-hellaswag")
    if hellaswag is not None and view.hellaswag_points:
        last = view.hellaswag_points[-1]
        hellaswag.title = f"HellaSwag {last.acc_norm:.4f} · n={last.total}"
    memory = specs.get("chart-memory")
    if memory is not None:
        _sync_memory(memory, view)


def _sync_memory(spec: ChartSpec, view: RunView) -> None:
    ranks = view.memory_ranks()
    if [line.label for line in spec.lines] != [f"rank {r}" for r in ranks]:
        spec.lines = [Line(f"rank {r}", view.series[f"memory_rank{r}"], PALETTE[i % len(PALETTE)],
                           smooth=False) for i, r in enumerate(ranks)]
    figures = (view.system or {}).get("ranks") or []
    on_gpu = any(isinstance(r, dict) and r.get("gpu_mem_used_bytes") is not None for r in figures)
    spec.title = "GPU memory used (GiB)" if on_gpu else "process RSS (GiB)"
    totals = {r.get("gpu_mem_total_bytes") for r in figures if isinstance(r, dict)} - {None}
    spec.hlines = [(max(totals) / 2**30, "GPU total", (150, 150, 150))] if on_gpu and totals else []
