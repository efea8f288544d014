"""Prepare a config's token shards ahead of training (the trainer would otherwise do it itself on rank 0).

    python -m tui_trainer.training.prepare --config configs/default.toml [--set data.source=shakespeare] [--hellaswag]

``gpt-console prepare ...`` calls ``main(argv)``. Torch-free. Progress goes to stderr (one updating line on a
terminal, a line every few seconds otherwise); the result summary goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

from .lib.config import ConfigError, load_config
from .lib.shards import PrepareProgress, ensure_shards, list_shards, read_manifest
from .lib.sources import DataError
from .lib.tokenizer import TokenizerUnavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class StderrProgress:
    """Renders PrepareProgress: rewrites one line on a terminal, prints every ``interval`` seconds elsewhere."""

    def __init__(self, stream=None, interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self.last = float("-inf")
        self.calls = 0

    def __call__(self, p: PrepareProgress) -> None:
        self.calls += 1
        now = time.monotonic()
        if not (p.done or self.tty or now - self.last >= self.interval):
            return
        self.last = now
        rate = p.tokens / p.elapsed if p.elapsed > 0 else 0.0
        share = f" ({100 * p.tokens / p.max_tokens:.0f}% of data.max_tokens)" if p.max_tokens else ""
        line = (f"preparing {p.source}: {p.documents:,} documents, {p.tokens:,} tokens{share}, "
                f"{p.elapsed:.1f} s, {rate / 1000:,.0f}k tokens/s" + (" — done" if p.done else ""))
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if p.done else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt-console prepare",
        description="Tokenise the config's corpus into uint16 shards (shard 0 = validation) so training can "
                    "start at once. Does nothing if they are already prepared.")
    parser.add_argument("--config", required=True, help="TOML config (e.g. configs/default.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable), e.g. --set data.source=shakespeare")
    parser.add_argument("--hellaswag", action="store_true",
                        help="also fetch and check the HellaSwag validation file (for offline runs later)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    progress = StderrProgress()
    started = time.monotonic()
    try:
        shard_dir = ensure_shards(cfg, progress=progress)
        if args.hellaswag:
            from .lib.hellaswag import hellaswag_file, read_hellaswag
            path = hellaswag_file(cfg)
            print(f"HellaSwag: {len(read_hellaswag(path)):,} examples in {path}")
    except (DataError, TokenizerUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-written was kept; run the same command again to prepare.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary(shard_dir, built=progress.calls > 0, seconds=time.monotonic() - started))
    return EXIT_OK


def summary(shard_dir, *, built: bool, seconds: float) -> str:
    manifest = read_manifest(shard_dir)
    if manifest is not None:
        tokens = manifest.get("tokens") or {}
        train = tokens.get("train", sum(s["tokens"] for s in manifest["shards"] if s["split"] == "train"))
        val = tokens.get("val", sum(s["tokens"] for s in manifest["shards"] if s["split"] == "val"))
        files = len(manifest["shards"])
        detail = f"{train:,} train + {val:,} val tokens in {files} shard files"
    else:
        files = len(list_shards(shard_dir, "train")) + len(list_shards(shard_dir, "val"))
        detail = f"{files} shard files without a manifest (used as they are)"
    head = f"prepared in {seconds:.1f} s" if built else "already prepared"
    return f"{head}: {shard_dir}\n  {detail}"


if __name__ == "__main__":
    sys.exit(main())
