"""A braille dot canvas rasterised with numpy: each terminal cell holds 2×4 dots.

Lines are drawn column by column: a polyline covers, in each dot column, the span between its lowest and highest
y inside that column (its values at the column's edges and every point within it). For the min/max-thinned
series the charts draw, that is exactly a connected line with its spikes, at the cost of a few array
operations instead of a Python loop per dot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]

# Braille dot bit for (row within cell 0..3, column within cell 0..1), Unicode U+2800 block order.
_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int32)


@dataclass
class DotCanvas:
    """``width`` × ``height`` cells; dot coordinates run 0..2·width-1 (x) and 0..4·height-1 (y, 0 = top)."""
    width: int
    height: int
    layers: list[tuple[np.ndarray, RGB]] = field(default_factory=list)
    marks: dict[tuple[int, int], tuple[str, RGB]] = field(default_factory=dict)

    @property
    def dots_x(self) -> int:
        return 2 * self.width

    @property
    def dots_y(self) -> int:
        return 4 * self.height

    def _grid(self) -> np.ndarray:
        return np.zeros((self.dots_y, self.dots_x), dtype=bool)

    def polyline(self, xs: np.ndarray, ys: np.ndarray, color: RGB) -> None:
        """A connected line through points in dot coordinates, ``xs`` non-decreasing, all finite."""
        grid = self._grid()
        n = len(xs)
        if n == 0:
            return
        cols, rows = self.dots_x, self.dots_y
        if n == 1 or xs[-1] - xs[0] < 1e-9:
            c = int(np.clip(np.floor(xs[0]), 0, cols - 1))
            lo, hi = _row_span(np.min(ys), np.max(ys), rows)
            grid[lo:hi + 1, c] = True
            self.layers.append((grid, color))
            return
        c_lo = int(np.clip(np.floor(xs[0]), 0, cols - 1))
        c_hi = int(np.clip(np.floor(xs[-1]), 0, cols - 1))
        columns = np.arange(c_lo, c_hi + 1, dtype=np.float64)
        left = np.clip(columns, xs[0], xs[-1])
        right = np.clip(columns + 0.999, xs[0], xs[-1])
        y_left = np.interp(left, xs, ys)
        y_right = np.interp(right, xs, ys)
        lo = np.minimum(y_left, y_right)
        hi = np.maximum(y_left, y_right)
        inside = np.clip(np.floor(xs).astype(np.int64), c_lo, c_hi) - c_lo
        np.minimum.at(lo, inside, ys)
        np.maximum.at(hi, inside, ys)
        r_lo = np.clip(np.rint(lo), 0, rows - 1).astype(np.int64)
        r_hi = np.clip(np.rint(hi), 0, rows - 1).astype(np.int64)
        r = np.arange(rows)[:, None]
        grid[:, c_lo:c_hi + 1] = (r >= r_lo[None, :]) & (r <= r_hi[None, :])
        self.layers.append((grid, color))

    def hline(self, y: float, color: RGB, dashed: bool = False) -> None:
        if not 0 <= y <= self.dots_y - 1:
            return
        grid = self._grid()
        row = int(np.rint(y))
        grid[row, :] = True
        if dashed:
            grid[row, 2::4] = grid[row, 3::4] = False
        self.layers.append((grid, color))

    def vline(self, x: float, color: RGB) -> None:
        if not 0 <= x <= self.dots_x - 1:
            return
        grid = self._grid()
        grid[::2, int(np.rint(x))] = True  # dotted, so it reads as a marker rather than data
        self.layers.append((grid, color))

    def mark(self, x: float, y: float, char: str, color: RGB) -> None:
        """A character in the cell holding dot (x, y) (markers, labels); drawn over the dots."""
        cx, cy = int(x) // 2, int(y) // 4
        if 0 <= cx < self.width and 0 <= cy < self.height:
            self.marks[(cy, cx)] = (char, color)

    def text(self, row: int, col: int, text: str, color: RGB) -> None:
        for i, ch in enumerate(text):
            if 0 <= col + i < self.width and 0 <= row < self.height:
                self.marks[(row, col + i)] = (ch, color)

    def cells(self) -> tuple[list[list[str]], list[list[RGB | None]]]:
        """Characters and colours per cell. A cell takes the colour of the last layer with a dot in it."""
        h, w = self.height, self.width
        bits = np.zeros((h, w), dtype=np.int32)
        owner = np.full((h, w), -1, dtype=np.int32)
        weights = _BITS[None, :, None, :]
        for index, (grid, _) in enumerate(self.layers):
            layer = (grid.reshape(h, 4, w, 2) * weights).sum(axis=(1, 3))
            bits |= layer
            owner[layer > 0] = index
        colors_by_layer = [color for _, color in self.layers]
        chars = [[chr(0x2800 + b) if b else " " for b in row] for row in bits.tolist()]
        colors: list[list[RGB | None]] = [[colors_by_layer[o] if o >= 0 else None for o in row]
                                          for row in owner.tolist()]
        for (r, c), (ch, color) in self.marks.items():
            chars[r][c], colors[r][c] = ch, color
        return chars, colors


def _row_span(lo: float, hi: float, rows: int) -> tuple[int, int]:
    return int(np.clip(np.rint(lo), 0, rows - 1)), int(np.clip(np.rint(hi), 0, rows - 1))
