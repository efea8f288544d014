"""HellaSwag validation data: find or download it, read it, and render examples as build-nanogpt does. Torch-free.

An example is a context and four endings; the model "chooses" the ending it finds least surprising. Rendering:
four rows ``context tokens + tokens of " " + ending``, with a mask over the ending tokens. The scoring itself
(total and mean loss over the masked tokens) lives in evaluation.run_hellaswag_eval.

The official file is ``hellaswag_val.jsonl`` (10,042 lines) from github.com/rowanz/hellaswag. No sha256 of it is
published that we could confirm, so a download is checked for its shape instead: 10,042 JSON lines, each with a
``ctx`` string, four ``endings`` and a ``label`` in 0..3. (In September 2026 that repository was disabled after a
DMCA claim, so the download may fail; ``eval.hellaswag_path`` takes a local copy, .jsonl or .jsonl.gz.)
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from .sources import DataError, cache_dir, download_file

HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
HELLASWAG_VAL_EXAMPLES = 10042


def hellaswag_file(cfg) -> Path:
    """``eval.hellaswag_path`` if set (must exist), else the official file downloaded into the cache dir."""
    if cfg.eval.hellaswag_path:
        path = Path(os.path.expanduser(cfg.eval.hellaswag_path))
        if not path.is_file():
            raise DataError(f"eval.hellaswag_path = '{cfg.eval.hellaswag_path}' does not exist or is not a file. "
                            "Point it at hellaswag_val.jsonl (or .jsonl.gz), or leave it empty to download it.")
        return path
    return download_file(HELLASWAG_URL, cache_dir(cfg) / "hellaswag" / "hellaswag_val.jsonl",
                         what="the HellaSwag validation set", path_key="eval.hellaswag_path",
                         verify=_verify_official_download)


def _verify_official_download(path: Path) -> None:
    examples = read_hellaswag(path)
    if len(examples) != HELLASWAG_VAL_EXAMPLES:
        raise DataError(f"The downloaded HellaSwag file has {len(examples)} examples, not the "
                        f"{HELLASWAG_VAL_EXAMPLES} of hellaswag_val.jsonl; it was not kept. Set "
                        "eval.hellaswag_path to a local copy of the official file.")


def read_hellaswag(path: Path) -> list[dict]:
    """Every example of a .jsonl or .jsonl.gz file as {"ctx", "endings", "label"} (other fields ignored)."""
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"  # by content, so a .gz without the suffix reads too
    opener = gzip.open if gzipped else open
    examples = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    examples.append(_parse_example(line, path, lineno))
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataError(f"Cannot read HellaSwag file {path} ({e}). Point eval.hellaswag_path at an intact "
                        "hellaswag_val.jsonl or .jsonl.gz.") from None
    if not examples:
        raise DataError(f"HellaSwag file {path} holds no examples. Point eval.hellaswag_path at "
                        "hellaswag_val.jsonl (or .jsonl.gz).")
    return examples


def _parse_example(line: str, path: Path, lineno: int) -> dict:
    try:
        row = json.loads(line)
        ctx, endings, label = row["ctx"], row["endings"], int(row["label"])
        ok = (isinstance(ctx, str) and isinstance(endings, list) and len(endings) == 4
              and all(isinstance(e, str) for e in endings) and 0 <= label < 4)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"{path}, line {lineno}: not a HellaSwag example (expected JSON with a \"ctx\" string, "
                        "4 \"endings\" and a \"label\" from 0 to 3). Is eval.hellaswag_path the right file?")
    return {"ctx": ctx, "endings": list(endings), "label": label}


def select_examples(examples: list[dict], count: int) -> list[dict]:
    """``count`` examples spread evenly over the file (0 or more than there are = all), in file order; the
    file runs through its sources in blocks, so an even spread is more representative than the first N."""
    n = len(examples)
    if count <= 0 or count >= n:
        return list(examples)
    return [examples[i * n // count] for i in range(count)]


def load_hellaswag(cfg) -> list[dict]:
    """The examples one HellaSwag evaluation uses: ``eval.hellaswag_examples`` of them (0 = all)."""
    return select_examples(read_hellaswag(hellaswag_file(cfg)), cfg.eval.hellaswag_examples)


def render_example(example: dict, enc, block_size: int) -> tuple[list[list[int]], list[list[int]], int]:
    """(rows, masks, label): four token rows ``ctx + " " + ending`` and their 0/1 masks over the ending.

    A row longer than the model's context keeps its last ``block_size`` tokens (the ending is what is scored).
    """
    ctx = enc.encode_ordinary(example["ctx"])
    rows, masks = [], []
    for ending in example["endings"]:
        end = enc.encode_ordinary(" " + ending)  # GPT-2 tokens carry their leading space
        row, mask = ctx + end, [0] * len(ctx) + [1] * len(end)
        rows.append(row[-block_size:])
        masks.append(mask[-block_size:])
    return rows, masks, int(example["label"])
