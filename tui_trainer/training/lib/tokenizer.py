"""The GPT-2 BPE (tiktoken "gpt2"), with one clear message when it cannot be loaded offline.

tiktoken downloads ``vocab.bpe`` and ``encoder.json`` on first use and caches them in ``TIKTOKEN_CACHE_DIR``
(or a temp dir). On a machine without network and without that cache, tiktoken fails deep inside ``requests``;
``get_tokenizer`` turns that into a ``TokenizerUnavailable`` a user can act on. Torch-free.
"""

from __future__ import annotations

import os
import tempfile

from .errors import UserError

EOT = 50256  # <|endoftext|>: precedes every document in the token shards
TOKENIZER_NAME = "gpt2"

# The files tiktoken fetches for "gpt2" (named here so the error can say what is missing).
BPE_FILES = (
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
)


class TokenizerUnavailable(UserError, RuntimeError):
    """The GPT-2 BPE could not be loaded (no cached files and no network, or tiktoken missing)."""


def tiktoken_cache_dir() -> str:
    """The directory tiktoken reads its cache from, resolved the way tiktoken resolves it."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def get_tokenizer():
    """tiktoken's GPT-2 encoding (cached by tiktoken after the first call).

    Raises TokenizerUnavailable with a one-paragraph explanation instead of a network traceback.
    """
    try:
        import tiktoken
    except ImportError as e:
        raise TokenizerUnavailable(
            "The GPT-2 tokenizer needs the `tiktoken` package, which is not installed in this Python "
            f"({e}). Install the project's dependencies (pip install -e .) and try again.") from None
    try:
        return tiktoken.get_encoding(TOKENIZER_NAME)
    except Exception as e:  # noqa: BLE001 - requests/OSError/ValueError(hash) all mean the same to a user
        cache = tiktoken_cache_dir()
        where = f"TIKTOKEN_CACHE_DIR={cache}" if "TIKTOKEN_CACHE_DIR" in os.environ else \
            f"tiktoken's default cache {cache} (TIKTOKEN_CACHE_DIR is not set)"
        raise TokenizerUnavailable(
            "The GPT-2 BPE (tiktoken 'gpt2': vocab.bpe and encoder.json) could not be loaded offline: the "
            f"cached files are not in {where}, and downloading them failed ({type(e).__name__}: "
            f"{_first_line(e)}). Set TIKTOKEN_CACHE_DIR to a directory holding the cached files, or run once "
            "with network so tiktoken caches them "
            f"(files: {', '.join(BPE_FILES)}).") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no detail"
