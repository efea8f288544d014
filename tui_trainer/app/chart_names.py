"""Names of the charts and x axes, importable without numpy, plotext or Textual (the CLI parser needs them)."""

CHART_NAMES: tuple[str, ...] = ("loss", "lr", "hellaswag", "toks", "grad", "memory")
X_AXES: tuple[str, ...] = ("step", "tokens", "wall")
