"""Corpus readers: each source yields documents (plain strings) in a fixed, reproducible order. Torch-free.

Sources (``[data] source``):
  embedded     Python's own documentation, shipped with every CPython: the pydoc topics (``pydoc_data.topics``),
               the docstrings of the standard library's source files (read with ``ast``, nothing imported), and
               the docstrings of the C modules built into the interpreter. No download.
  shakespeare  Tiny Shakespeare: ``[data] path`` or a checksum-verified download into ``<cache_dir>``.
  fineweb-edu  HuggingFaceFW/fineweb-edu, subset sample-10BT, streamed through the optional ``datasets`` extra.
  files        ``[data] path``: a file, directory or glob of .txt (one document per file) and .jsonl (a "text"
               field per line) files.

Also here: ``download_file`` (urllib, temp file + rename, sha256-checked) and ``DataError``, the one exception
for data problems a user can cause and fix; its message says what and how.
"""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import inspect
import json
import os
import sys
import sysconfig
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
FINEWEB_DATASET = "HuggingFaceFW/fineweb-edu"
FINEWEB_NAME = "sample-10BT"
FINEWEB_SPLIT = "train"

# Tiny Shakespeare is one file; it is cut at blank lines into passages of about this many characters so the
# validation split can hold out whole passages spread over the text (each passage starts with an EOT token).
SHAKESPEARE_PASSAGE_CHARS = 8192

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl",)

# Bump when embedded_documents() changes what it extracts, so shards prepared by older code are not reused.
EMBEDDED_EXTRACTION_VERSION = 2

# Corpora that are streamed rather than held in full: their validation shard is simply their first shard.
STREAMED_SOURCES = ("fineweb-edu",)


class DataError(UserError, RuntimeError):
    """A data problem the user can fix (missing file, offline download, bad JSONL...); the message says how."""


def cache_dir(cfg) -> Path:
    """``[data] cache_dir`` with ~ expanded (downloads and default shard directories live here)."""
    return Path(os.path.expanduser(cfg.data.cache_dir))


# ------------------------------------------------------------------------------------------ downloads
def download_file(url: str, dest: Path, *, what: str, path_key: str, sha256: str | None = None,
                  verify: Callable[[Path], None] | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` unless a good copy is already there; return ``dest``.

    The bytes go to a hidden temp file beside ``dest`` and are renamed into place only after the sha256 (when
    given) and ``verify`` (which raises DataError) accept them, so ``dest`` is either complete or absent.
    ``what`` names the file and ``path_key`` the config key that points at a local copy, for the messages.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or file_sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.part"
    digest = hashlib.sha256()
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:  # ValueError: malformed URL
            reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
            raise DataError(
                f"Could not download {what} from {url} ({reason}). If this machine is offline or the address "
                f"no longer serves the file, fetch it elsewhere and point the config at your copy: set "
                f'{path_key} = "/path/to/file" in the TOML (or --set {path_key}=/path/to/file).') from None
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(
                f"The download of {what} from {url} is corrupt or not the expected file: its sha256 is "
                f"{digest.hexdigest()}, expected {sha256}. Nothing was kept. Try again later, or set {path_key} "
                "to a local copy of the right file.")
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- choice
def iter_documents(cfg) -> Iterator[str]:
    """The documents of ``cfg.data.source`` in their fixed order (empty documents skipped)."""
    source = cfg.data.source
    if source == "embedded":
        docs = embedded_documents()
    elif source == "shakespeare":
        docs = shakespeare_documents(shakespeare_file(cfg))
    elif source == "fineweb-edu":
        docs = fineweb_documents()
    elif source == "files":
        docs = file_documents(cfg.data.path)
    else:  # config validation rejects other names; this guards direct callers
        raise DataError(f"unknown data source '{source}': use embedded, shakespeare, fineweb-edu or files")
    return (d for d in docs if d)


def source_fingerprint(cfg) -> dict:
    """What identifies the corpus's content, so shards built from other input are never taken for these."""
    source = cfg.data.source
    if source == "embedded":
        # The docs differ between Python versions (same version and extraction => same corpus).
        return {"python": "%d.%d.%d" % sys.version_info[:3], "extraction": EMBEDDED_EXTRACTION_VERSION}
    if source == "shakespeare":
        if cfg.data.path:  # a local copy may be any text; identify it like local files
            return _files_fingerprint(cfg.data.path, [shakespeare_file(cfg)])
        return {"sha256": SHAKESPEARE_SHA256}
    if source == "fineweb-edu":
        return {"dataset": FINEWEB_DATASET, "name": FINEWEB_NAME, "split": FINEWEB_SPLIT}
    return _files_fingerprint(cfg.data.path, resolve_input_files(cfg.data.path))


def _files_fingerprint(spec: str, files: list[Path]) -> dict:
    """Names, sizes and modification times: editing, adding or removing a file changes it (without reading
    gigabytes of text on every start)."""
    digest = hashlib.sha256()
    for path in files:
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": spec, "files": len(files), "stat_sha256": digest.hexdigest()}


# ------------------------------------------------------------------------------------------- embedded
def embedded_documents() -> Iterator[str]:
    """Python's documentation: pydoc topics, then stdlib source docstrings, then built-in C modules' docstrings.

    One document per pydoc topic and per module. Deterministic for a given Python: sorted keys and paths, AST
    order within a file, sorted member names.
    """
    yield from _pydoc_topics()
    yield from _stdlib_docstrings()
    yield from _builtin_module_docstrings()


def _pydoc_topics() -> Iterator[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions package pydoc_data separately
        return
    for name in sorted(topics):
        yield topics[name].strip() + "\n"


# Not documentation: third-party packages, and the test suites (60% of the stdlib's source bytes, mostly
# "Test that ..." docstrings; skipping them makes the corpus three times faster to read).
SKIPPED_STDLIB_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})


def stdlib_source_files() -> list[Path]:
    """The standard library's .py files (packages and tests excluded), sorted by their path inside the stdlib."""
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        return []
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_STDLIB_DIRS)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _stdlib_docstrings() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib_source_files():
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        try:
            with warnings.catch_warnings():  # invalid escape sequences in old docstrings
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):  # Python 2 samples (lib2to3), odd encodings
            continue
        text = module_docs_text(module, tree)
        if text:
            yield text


def module_docs_text(module: str, tree: ast.Module) -> str:
    """A module's docstrings as pydoc-like text: the module's, then each class's and function's with its
    signature, in source order, nested names qualified."""
    parts = []
    doc = ast.get_docstring(tree)
    if doc:
        parts.append(f"{module}\n\n{doc}")
    for kind, qualname, signature, doc in _definitions(tree.body, ""):
        parts.append(f"{kind}{module}.{qualname}{signature}\n" + _indent(doc))
    return "\n\n".join(parts) + "\n" if parts else ""


def _indent(doc: str) -> str:
    return "\n".join("    " + line if line.strip() else "" for line in doc.splitlines())


def _definitions(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            doc = ast.get_docstring(node)
            if isinstance(node, ast.ClassDef):
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                signature = f"({bases})" if bases else ""
                kind = "class "
            else:
                signature = f"({ast.unparse(node.args)})"
                kind = "async def " if isinstance(node, ast.AsyncFunctionDef) else "def "
            if doc:
                yield kind, name, signature, doc
            yield from _definitions(node.body, name + ".")


def _builtin_module_docstrings() -> Iterator[str]:
    for name in sorted(sys.builtin_module_names):
        if name.startswith("_") or name == "xxsubtype":  # private helpers and the demo module
            continue
        try:
            module = __import__(name)
        except ImportError:
            continue
        parts = [f"{name}\n\n{inspect.cleandoc(module.__doc__)}"] if module.__doc__ else []
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            # sys keeps the originals of hooks that tools replace (pytest swaps sys.unraisablehook, IDEs
            # sys.excepthook): document those so the corpus does not depend on who runs it.
            original = getattr(module, f"__{attr}__", None) if attr.endswith("hook") else None
            obj = original or getattr(module, attr, None)
            if not (inspect.isbuiltin(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", name) != name:
                continue
            parts.extend(_builtin_member_docs(f"{name}.{attr}", obj))
        if parts:
            yield "\n\n".join(parts) + "\n"


def _builtin_member_docs(qualname: str, obj) -> list[str]:
    docs = []
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
    if doc:
        docs.append(f"{qualname}\n" + _indent(inspect.cleandoc(doc)))
    if inspect.isclass(obj):
        for attr in sorted(vars(obj)):
            member = vars(obj)[attr]
            mdoc = getattr(member, "__doc__", None)
            if attr.startswith("_") or not isinstance(mdoc, str) or not callable(member):
                continue
            docs.append(f"{qualname}.{attr}\n" + _indent(inspect.cleandoc(mdoc)))
    return docs


# ----------------------------------------------------------------------------------------- shakespeare
def shakespeare_file(cfg) -> Path:
    """``[data] path`` if set (must exist), else the verified download in ``<cache_dir>``."""
    if cfg.data.path:
        path = Path(os.path.expanduser(cfg.data.path))
        if not path.is_file():
            raise DataError(f"data.path = '{cfg.data.path}' does not exist or is not a file. Point it at a "
                            "copy of Tiny Shakespeare (input.txt), or leave it empty to download the file.")
        return path
    return download_file(SHAKESPEARE_URL, cache_dir(cfg) / "tinyshakespeare.txt", what="Tiny Shakespeare",
                         path_key="data.path", sha256=SHAKESPEARE_SHA256)


def shakespeare_documents(path: Path) -> Iterator[str]:
    """The text cut at blank lines into passages of about SHAKESPEARE_PASSAGE_CHARS (concatenated = the file)."""
    yield from split_passages(Path(path).read_text(encoding="utf-8", errors="replace"), SHAKESPEARE_PASSAGE_CHARS)


def split_passages(text: str, target_chars: int) -> Iterator[str]:
    start = 0
    while start < len(text):
        cut = text.find("\n\n", start + target_chars)
        end = len(text) if cut < 0 else cut + 2
        yield text[start:end]
        start = end


# ----------------------------------------------------------------------------------------- fineweb-edu
def fineweb_documents() -> Iterator[str]:
    """FineWeb-Edu sample-10BT, streamed (nothing is downloaded up front)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            "data.source = 'fineweb-edu' streams HuggingFaceFW/fineweb-edu (sample-10BT) through the `datasets` "
            "package, which is not installed. Install the extra with  pip install -e '.[fineweb]'  (or "
            "pip install datasets), or choose another data.source.") from None
    try:
        stream = datasets.load_dataset(FINEWEB_DATASET, name=FINEWEB_NAME, split=FINEWEB_SPLIT, streaming=True)
        for row in stream:
            yield row["text"]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - network/hub errors surface here; the user needs the cause, not a trace
        raise DataError(
            f"Streaming {FINEWEB_DATASET} ({FINEWEB_NAME}) failed: {type(e).__name__}: {e}. It needs network "
            "access to the Hugging Face Hub (check HF_HUB_OFFLINE and proxies), or use data.source = 'files' "
            "with a local copy.") from None


# ---------------------------------------------------------------------------------------------- files
def resolve_input_files(spec: str) -> list[Path]:
    """A file, a directory (searched recursively for .txt/.jsonl) or a glob, as a sorted list of files."""
    if not spec:
        raise DataError("data.source = 'files' needs data.path: a file, directory or glob of .txt/.jsonl files.")
    expanded = os.path.expanduser(spec)
    path = Path(expanded)
    supported = TEXT_SUFFIXES + JSONL_SUFFIXES
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix in supported]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(expanded, recursive=True) if Path(p).is_file()]
    if not files:
        raise DataError(f"data.path = '{spec}' matches no files. Give a file, a directory or a glob "
                        "(e.g. 'corpus/**/*.txt') of .txt or .jsonl files.")
    unsupported = [p for p in files if p.suffix not in supported]
    if unsupported:
        raise DataError(f"data.path = '{spec}' includes files that are neither .txt nor .jsonl (e.g. "
                        f"{unsupported[0]}). Narrow the glob, or convert them: .txt = one document per file, "
                        '.jsonl = one {"text": ...} object per line.')
    return sorted(files, key=lambda p: p.as_posix())


def file_documents(spec: str) -> Iterator[str]:
    for path in resolve_input_files(spec):
        if path.suffix in JSONL_SUFFIXES:
            yield from jsonl_texts(path)
        else:
            yield path.read_text(encoding="utf-8", errors="replace")


def jsonl_texts(path: Path) -> Iterator[str]:
    """The "text" field of each line of a JSONL file (blank lines skipped); a bad line names file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line).get("text")
            except (json.JSONDecodeError, AttributeError):
                text = None
            if not isinstance(text, str):
                raise DataError(f"{path}, line {lineno}: expected a JSON object with a \"text\" string. Each "
                                'line of a .jsonl corpus must look like {"text": "..."}.')
            yield text
