"""Shared test set-up: the offline tokenizer cache and the shared data files, when they are beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GPT_CONSOLE_SHARED", REPO.parent / "shared"))

# tiktoken reads TIKTOKEN_CACHE_DIR when it first loads an encoding; point it at the shared GPT-2 BPE so the
# suite runs offline. A user's own setting wins.
if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (Tiny Shakespeare, HellaSwag val); tests that need it skip with a reason if absent."""
    path = Path(os.environ.get("GPT_CONSOLE_SHARED_DATA", SHARED / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set GPT_CONSOLE_SHARED_DATA)")
    return path
