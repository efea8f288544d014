"""Token shards: tokenise a corpus into uint16 .npy files plus manifest.json, atomically. Torch-free.

Layout (build-nanogpt's, so its FineWeb shards load too)::

    <shard_dir>/<source>_val_000000.npy     shard 0: validation
    <shard_dir>/<source>_train_000001.npy   training, shard_tokens each (the last one shorter)
    <shard_dir>/manifest.json               {"source", "tokenizer", "eot", "shards": [...], "complete": true, ...}

Every document is preceded by the EOT token. Small corpora hold out whole documents for validation: document i
goes to val when ceil((i+1)·f) > ceil(i·f) (f = val_fraction), which spreads val over the corpus, always includes
document 0, and needs no shuffling. Streamed corpora (fineweb-edu) use their first shard_tokens tokens as val.

A shard directory is built in a hidden temp directory beside it and renamed into place with its manifest, so a
half-written directory is never mistaken for a complete one; a lock file keeps two preparers from racing.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .sources import (STREAMED_SOURCES, DataError, cache_dir, iter_documents, resolve_input_files,
                      source_fingerprint)
from .tokenizer import EOT, TOKENIZER_NAME, get_tokenizer

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# Documents are tokenised in batches of about this many characters (the unit of work and of progress reports).
BATCH_CHARS = 1 << 20
BATCH_DOCUMENTS = 1024
PARALLEL_MIN_BYTES = 64 << 20


@dataclass(frozen=True)
class PrepareProgress:
    """Handed to the ``progress`` callback after every tokenised batch and once at the end (done=True)."""
    source: str
    documents: int
    tokens: int
    max_tokens: int | None  # the cap when data.max_tokens is set (a total to show a fraction of), else None
    elapsed: float
    done: bool = False


ProgressFn = Callable[[PrepareProgress], None]


# ----------------------------------------------------------------------------------------- locations
def shard_recipe(cfg) -> dict:
    """Everything that determines the shards' content; stored in the manifest and hashed into the default dir."""
    d = cfg.data
    return {
        "format": FORMAT_VERSION,
        "source": d.source,
        "input": source_fingerprint(cfg),
        "tokenizer": TOKENIZER_NAME,
        "val_fraction": d.val_fraction,
        "shard_tokens": d.shard_tokens,
        "max_tokens": d.max_tokens,
    }


def recipe_key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]


def resolve_shard_dir(cfg, recipe: dict | None = None) -> Path:
    """``[data] shard_dir`` if set, else ``<cache_dir>/shards/<source>-<recipe key>`` (one dir per recipe, so
    changing val_fraction or the input files never reuses or overwrites shards built from something else)."""
    if cfg.data.shard_dir:
        return Path(os.path.expanduser(cfg.data.shard_dir))
    recipe = recipe or shard_recipe(cfg)
    return cache_dir(cfg) / "shards" / f"{cfg.data.source}-{recipe_key(recipe)}"


def shard_name(source: str, split: str, index: int) -> str:
    return f"{source}_{split}_{index:06d}.npy"


def read_manifest(shard_dir: Path) -> dict | None:
    try:
        return json.loads((Path(shard_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{Path(shard_dir) / MANIFEST} is unreadable ({e}). Delete the shard directory "
                        f"{shard_dir} and prepare the data again.") from None


def list_shards(shard_dir: Path, split: str) -> list[Path]:
    """The shard files of one split ("train" or "val"), in order: from the manifest if there is one, else by
    globbing ``*_<split>_*.npy`` (build-nanogpt's FineWeb shards have no manifest)."""
    shard_dir = Path(shard_dir)
    manifest = read_manifest(shard_dir)
    if manifest is not None:
        return [shard_dir / s["file"] for s in manifest["shards"] if s["split"] == split]
    return sorted(shard_dir.glob(f"*_{split}_*.npy"))


def is_val_document(index: int, val_fraction: float) -> bool:
    """Document ``index`` is held out for validation (an even spread; document 0 always, so val is never empty)."""
    if val_fraction <= 0:
        return index == 0
    return math.ceil((index + 1) * val_fraction) > math.ceil(index * val_fraction)


# -------------------------------------------------------------------------------------------- ensure
def ensure_shards(cfg, *, progress: ProgressFn | None = None) -> Path:
    """Return the shard directory for ``cfg``, preparing it first if it is missing. Idempotent and safe to call
    from several processes at once (one builds, the others wait and reuse the result)."""
    recipe = shard_recipe(cfg)
    shard_dir = resolve_shard_dir(cfg, recipe)
    if _usable(shard_dir, recipe):
        return shard_dir
    get_tokenizer()  # fail before reading the corpus if the BPE is unavailable offline
    shard_dir.parent.mkdir(parents=True, exist_ok=True)
    with _BuildLock(shard_dir.parent / f".{shard_dir.name}.lock"):
        if _usable(shard_dir, recipe):  # someone else built it while we waited
            return shard_dir
        _remove_stale_builds(shard_dir)
        tmp = shard_dir.parent / f".{shard_dir.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            build_shards(iter_documents(cfg), tmp, source=cfg.data.source, recipe=recipe,
                         shard_tokens=cfg.data.shard_tokens, val_fraction=cfg.data.val_fraction,
                         streamed=cfg.data.source in STREAMED_SOURCES, max_tokens=cfg.data.max_tokens,
                         progress=progress, workers=prepare_workers(cfg))
            if shard_dir.is_dir():  # an empty directory the user created: rename() needs it gone
                shard_dir.rmdir()
            os.rename(tmp, shard_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return shard_dir


# Recipe entries as the user knows them.
_RECIPE_KEYS = {"source": "data.source", "input": "the input (data.path, its files, or the Python version)",
                "val_fraction": "data.val_fraction", "shard_tokens": "data.shard_tokens",
                "max_tokens": "data.max_tokens", "tokenizer": "the tokenizer", "format": "the shard format"}


def _usable(shard_dir: Path, recipe: dict) -> bool:
    """True if ``shard_dir`` holds complete shards for this recipe; False if it is missing or empty; raises
    DataError if it holds something else we must not touch."""
    if not shard_dir.exists():
        return False
    if not shard_dir.is_dir():
        raise DataError(f"data.shard_dir = '{shard_dir}' is a file, not a directory. Point it at a directory.")
    manifest = read_manifest(shard_dir)
    if manifest is not None and manifest.get("complete"):
        built = manifest.get("recipe")
        if built is not None and built != recipe:
            changed = sorted(_RECIPE_KEYS.get(k, k) for k in set(built) | set(recipe) if built.get(k) != recipe.get(k))
            raise DataError(
                f"The shards in {shard_dir} were prepared with different settings (changed since: "
                f"{', '.join(changed)}). Delete that directory to prepare it again, or clear data.shard_dir so "
                "each recipe gets its own directory under data.cache_dir.")
        return True
    if list_shards(shard_dir, "train") and list_shards(shard_dir, "val"):
        return True  # shards without a manifest (e.g. build-nanogpt's FineWeb): use them as they are
    if not any(shard_dir.iterdir()):
        return False
    raise DataError(
        f"{shard_dir} exists but holds no complete token shards (no manifest.json and no *_val_*.npy plus "
        "*_train_*.npy files). It may be another directory of yours, so it was left alone: point "
        "data.shard_dir elsewhere (or leave it empty), or delete the directory if it is a leftover.")


def _remove_stale_builds(shard_dir: Path) -> None:
    """Temp build dirs of preparers that died (we hold the lock, so no live build owns one)."""
    for stale in shard_dir.parent.glob(f".{shard_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


class _BuildLock:
    """An exclusive advisory lock on a file (fcntl; a no-op where fcntl does not exist)."""

    def __init__(self, path: Path):
        self.path = path
        self.file = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: concurrent preparation is not guarded
            return self
        self.file = open(self.path, "a+")
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # closing releases the flock


# --------------------------------------------------------------------------------------------- build
def tokenize_documents(documents: Iterable[str], *, workers: int = 1) -> Iterator[list[np.ndarray]]:
    """Batches of documents, each document as a uint16 array [EOT, tokens...], in corpus order.

    ``workers`` > 1 encodes batches in that many spawned processes (tiktoken holds the GIL while encoding, so
    threads do not help; "spawn" because the trainer may call this from a process with torch's threads).
    """
    if workers <= 1:
        for batch in _batches(documents):
            yield encode_batch(batch)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # At most 2 batches per worker in flight: a streamed corpus must not be read ahead without bound.
    # (ProcessPoolExecutor rather than Pool: a worker that cannot start raises instead of hanging.)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: collections.deque = collections.deque()
        try:
            for batch in _batches(documents):
                pending.append(pool.submit(encode_batch, batch))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise DataError(f"The tokenizer worker processes died ({e}). Run the preparation again; if it "
                            "keeps failing, check memory limits.") from None
        finally:
            for future in pending:
                future.cancel()


def encode_batch(batch: list[str]) -> list[np.ndarray]:
    enc = get_tokenizer()  # tiktoken caches the encoding, so this is cheap after the first call
    out = []
    for tokens in enc.encode_ordinary_batch(batch, num_threads=1):
        arr = np.empty(len(tokens) + 1, dtype=np.uint16)
        arr[0] = EOT
        arr[1:] = tokens  # GPT-2 ids are < 2**16, so uint16 holds them exactly
        out.append(arr)
    return out


def _batches(documents: Iterable[str]) -> Iterator[list[str]]:
    batch, chars = [], 0
    for doc in documents:
        batch.append(doc)
        chars += len(doc)
        if chars >= BATCH_CHARS or len(batch) >= BATCH_DOCUMENTS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def prepare_workers(cfg) -> int:
    """Processes to tokenise with: all cores for big corpora, one for small ones (spawning costs more than it
    saves below a few tens of MB)."""
    cores = os.cpu_count() or 1
    if cfg.data.source in STREAMED_SOURCES:
        return cores
    if cfg.data.source == "files":
        size = sum(p.stat().st_size for p in resolve_input_files(cfg.data.path))
        return cores if size > PARALLEL_MIN_BYTES else 1
    return 1


class _ShardWriter:
    """Fills fixed-size uint16 shards of one split and saves each as it fills (documents span shard edges)."""

    def __init__(self, out_dir: Path, source: str, split: str, shard_tokens: int, first_index: int):
        self.out_dir, self.source, self.split = out_dir, source, split
        self.shard_tokens, self.index = shard_tokens, first_index
        self.buffer = np.empty(shard_tokens, dtype=np.uint16)
        self.filled = 0
        self.written: list[dict] = []

    def add(self, tokens: np.ndarray) -> None:
        while len(tokens):
            take = min(len(tokens), self.shard_tokens - self.filled)
            self.buffer[self.filled:self.filled + take] = tokens[:take]
            self.filled += take
            tokens = tokens[take:]
            if self.filled == self.shard_tokens:
                self.flush()

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.written) + self.filled

    def flush(self) -> None:
        if not self.filled:
            return
        name = shard_name(self.source, self.split, self.index)
        np.save(self.out_dir / name, self.buffer[:self.filled])
        self.written.append({"file": name, "split": self.split, "tokens": int(self.filled)})
        self.index += 1
        self.filled = 0


def build_shards(documents: Iterable[str], out_dir: Path, *, source: str, shard_tokens: int,
                 val_fraction: float, streamed: bool = False, max_tokens: int = 0, recipe: dict | None = None,
                 progress: ProgressFn | None = None, workers: int = 1) -> dict:
    """Tokenise ``documents`` into shards in ``out_dir`` and write manifest.json last; return the manifest.

    Val is shard 0: for a streamed corpus its first ``shard_tokens`` tokens, otherwise the held-out documents
    (is_val_document), at most ``shard_tokens`` of them (later held-out documents then train instead).
    ``max_tokens`` > 0 stops after that many tokens in total, cutting the last document.
    """
    out_dir = Path(out_dir)
    started = time.monotonic()
    val = _ShardWriter(out_dir, source, "val", shard_tokens, 0)
    train = _ShardWriter(out_dir, source, "train", shard_tokens, 1)
    counts = {"train": 0, "val": 0}
    total = 0
    n_docs = 0
    with contextlib.closing(tokenize_documents(documents, workers=workers)) as batches:
        for batch in batches:
            for tokens in batch:
                if max_tokens and total + len(tokens) > max_tokens:
                    tokens = tokens[:max_tokens - total]
                if streamed:
                    to_val = val.tokens < shard_tokens
                    head = shard_tokens - val.tokens if to_val else 0  # a document may straddle val and train
                    val.add(tokens[:head])
                    train.add(tokens[head:])
                else:
                    to_val = is_val_document(n_docs, val_fraction) and val.tokens + len(tokens) <= shard_tokens
                    (val if to_val else train).add(tokens)
                counts["val" if to_val else "train"] += 1
                n_docs += 1
                total += len(tokens)
                if max_tokens and total >= max_tokens:
                    break
            if progress:
                progress(PrepareProgress(source, n_docs, total, max_tokens or None, time.monotonic() - started))
            if max_tokens and total >= max_tokens:
                break
    val.flush()
    train.flush()
    if not val.written or not train.written:
        raise DataError(
            f"The '{source}' corpus is too small to split: {n_docs} documents, {total} tokens gave "
            f"{val.tokens} validation and {train.tokens} training tokens. Add more text, raise data.max_tokens "
            "(0 = no cap), or change data.val_fraction.")
    manifest = {
        "source": source,
        "tokenizer": TOKENIZER_NAME,
        "eot": EOT,
        "dtype": "uint16",
        "shards": val.written + train.written,
        "documents": counts,
        "tokens": {"train": train.tokens, "val": val.tokens},
        "recipe": recipe,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "complete": True,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if progress:
        progress(PrepareProgress(source, n_docs, total, max_tokens or None, time.monotonic() - started, True))
    return manifest
