"""Export a checkpoint as a Hugging Face GPT-2 directory that ``transformers`` loads with no code of ours.

    GPT2LMHeadModel.from_pretrained(DIR); AutoTokenizer.from_pretrained(DIR)

What is written:
  model.safetensors        fp32 weights under HF GPT-2 names. The four linear layers of each block
                           (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are transposed into HF's
                           Conv1D layout (in, out). The tied embedding is stored once (``wte.weight``; HF
                           ties lm_head to it). Vocabulary: cut back to GPT-2's 50,257 tokens. Our table is
                           padded to a multiple of 128 for matmul speed; the padded rows are never a target,
                           so they carry no information, and cutting them keeps the config identical to stock
                           GPT-2 (tokenizer and head agree, and ``generate`` can never emit an id the
                           tokenizer cannot decode).
  config.json              GPT2Config: n_layer, n_head, n_embd, n_positions = block_size, gelu_new (= our
                           tanh GELU), layer_norm_epsilon 1e-5 (torch's LayerNorm default), all dropouts 0.
  generation_config.json   bos/eos = <|endoftext|> (50256).
  vocab.json, merges.txt   byte-for-byte tiktoken's cached encoder.json and vocab.bpe — the GPT-2 BPE our
                           shards were tokenized with (tiktoken verifies their SHA-256 when it loads them).
  tokenizer_config.json,   GPT2Tokenizer settings and <|endoftext|> as bos/eos/unk.
  special_tokens_map.json
  README.md                a model card: config, step, tokens seen, final validation loss, HellaSwag.

Needs torch and safetensors (not transformers). Imported only by ``gpt-console export --hf``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from tui_trainer.export.output_dir import ExportError, check_output_dir, staged_dir

GPT2_VOCAB = 50257
EOT_ID = 50256
EOT_TEXT = "<|endoftext|>"
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which the model uses
TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# tiktoken caches each file under the SHA-1 of its URL (see tokenizer.BPE_FILES).
TOKENIZER_FILES = {
    "vocab.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    "merges.txt": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
}


# ---------------------------------------------------------------------------------------------- weights
def hf_state_dict(model_state: dict, n_layer: int) -> dict:
    """Our GPT's state_dict -> HF GPT2Model names and layouts (torch tensors, contiguous, unshared)."""
    out = {}
    for name, tensor in model_state.items():
        if name == "lm_head.weight":
            continue  # tied to wte: HF rebuilds it from wte.weight
        if not name.startswith("transformer."):
            raise ExportError(f"unexpected parameter {name!r} in the checkpoint; is it a gpt-console "
                              "checkpoint?")
        key = name.removeprefix("transformer.")
        if key == "wte.weight":
            tensor = tensor[:GPT2_VOCAB]
        elif key.endswith(TRANSPOSED):
            tensor = tensor.t()
        out[key] = tensor.detach().to("cpu").float().contiguous().clone()
    expected = 4 + 12 * n_layer  # wte, wpe, ln_f weight and bias; 6 weights and 6 biases per block
    if len(out) != expected:
        raise ExportError(f"the checkpoint has {len(out)} tensors where a {n_layer}-layer GPT-2 has "
                          f"{expected}")
    return out


def hf_config(model: dict) -> dict:
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": GPT2_VOCAB, "n_positions": model["block_size"], "n_ctx": model["block_size"],
        "n_embd": model["n_embd"], "n_layer": model["n_layer"], "n_head": model["n_head"], "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": LAYER_NORM_EPS, "initializer_range": 0.02,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "summary_first_dropout": 0.0,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True, "use_cache": True, "bos_token_id": EOT_ID, "eos_token_id": EOT_ID,
        "torch_dtype": "float32",
    }


# -------------------------------------------------------------------------------------------- tokenizer
def tokenizer_cache_files() -> dict[str, Path]:
    """vocab.json/merges.txt -> tiktoken's verified cache files. Loads the encoding first: tiktoken checks the
    files' SHA-256 (and fetches them when online); a clear ExportError when they cannot be had."""
    from tui_trainer.training.lib.tokenizer import TokenizerUnavailable, get_tokenizer, tiktoken_cache_dir
    try:
        get_tokenizer()
    except TokenizerUnavailable as e:
        raise ExportError(f"the tokenizer files cannot be exported: {e}") from None
    cache = Path(tiktoken_cache_dir())
    found = {}
    for name, url in TOKENIZER_FILES.items():
        path = cache / hashlib.sha1(url.encode()).hexdigest()
        if not path.is_file():
            raise ExportError(
                f"tiktoken's cached {url.rsplit('/', 1)[-1]} (for {name}) is not in {cache}: set "
                "TIKTOKEN_CACHE_DIR to the directory holding tiktoken's GPT-2 files (for this project's "
                "developers: ../shared/tiktoken), or run once with network so tiktoken caches them there")
        found[name] = path
    return found


def tokenizer_configs(block_size: int) -> dict[str, dict]:
    special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    return {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "model_max_length": block_size,
                                  "add_prefix_space": False, "add_bos_token": False, **special},
        "special_tokens_map.json": special,
    }


# ------------------------------------------------------------------------------------------- model card
def run_results(events: Iterable[dict], step: int) -> dict[str, Any]:
    """The newest validation loss and HellaSwag at or before ``step`` (a resumed run's re-run steps win)."""
    val: dict[int, float] = {}
    hellaswag: dict[int, dict] = {}
    for event in events:
        at = event.get("step")
        if not isinstance(at, int) or at > step:
            continue
        if event.get("type") == "val":
            val[at] = event.get("loss")
        elif event.get("type") == "hellaswag":
            hellaswag[at] = event
    results: dict[str, Any] = {}
    if val:
        results["val_step"] = max(val)
        results["val_loss"] = val[results["val_step"]]
    if hellaswag:
        newest = hellaswag[max(hellaswag)]
        keys = ("step", "acc", "acc_norm", "correct_norm", "total")
        results["hellaswag"] = {k: newest.get(k) for k in keys}
    return results


def model_card(name: str, config: dict, step: int, tokens: int, results: dict, config_toml: str = "") -> str:
    m, d = config["model"], config.get("data", {})
    params = _parameters(m)
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation", "tags: [gpt2, gpt-console]",
        "---",
        "", f"# {name}", "",
        f"A GPT-2 ({params / 1e6:.1f}M parameters) trained with gpt-console, exported at step {step:,}.", "",
        "```python", "from transformers import AutoTokenizer, GPT2LMHeadModel",
        "model = GPT2LMHeadModel.from_pretrained(\"PATH\")",
        "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")",
        "```", "", "| | |", "|---|---|",
        f"| layers × heads × width | {m['n_layer']} × {m['n_head']} × {m['n_embd']} |",
        f"| context | {m['block_size']} tokens |",
        f"| vocabulary | {GPT2_VOCAB:,} (GPT-2 BPE; the training table's {m['vocab_size']:,} padded rows "
        "cut) |",
        f"| training data | {d.get('source', '?')} |",
        f"| steps | {step:,} |",
        f"| tokens seen | {tokens:,} |",
    ]
    if "val_loss" in results:
        lines.append(f"| validation loss | {_num(results['val_loss'])} (step {results['val_step']:,}) |")
    else:
        lines.append("| validation loss | not measured by this step |")
    hs = results.get("hellaswag")
    if hs:
        lines.append(f"| HellaSwag acc_norm | {_num(hs['acc_norm'])} ({hs['correct_norm']}/{hs['total']}, "
                     f"step {hs['step']:,}); acc {_num(hs['acc'])} |")
    else:
        lines.append("| HellaSwag | not measured by this step |")
    if config_toml:
        lines += ["", "## Training configuration", "", "```toml", config_toml.strip(), "```"]
    return "\n".join(lines) + "\n"


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


def _parameters(m: dict) -> int:
    c, n_layer = m["n_embd"], m["n_layer"]
    return GPT2_VOCAB * c + m["block_size"] * c + n_layer * (12 * c * c + 13 * c) + 2 * c


# ---------------------------------------------------------------------------------------------- export
def find_checkpoint(checkpoints: list[Path], step: int | None) -> Path:
    """The newest complete checkpoint, or the one for ``step``."""
    checkpoints = [p for p in checkpoints if (p / "meta.json").is_file() and (p / "checkpoint.pt").is_file()]
    if not checkpoints:
        raise ExportError("this run has no complete checkpoint yet; `gpt-console control RUN checkpoint` "
                          "writes one from a live run")
    if step is None:
        return checkpoints[-1]
    for path in checkpoints:
        if int(path.name.split("-")[-1]) == step:
            return path
    have = ", ".join(str(int(p.name.split("-")[-1])) for p in checkpoints)
    raise ExportError(f"no checkpoint for step {step}; this run has checkpoints at steps {have}")


def export_hf(checkpoint_dir: Path, out: str | os.PathLike, *, name: str,
              events: Iterable[dict] = ()) -> Path:
    """Write the Hugging Face directory for one checkpoint; returns its path."""
    import torch
    from safetensors.torch import save_file

    out = check_output_dir(out, "the Hugging Face export")
    tokenizer = tokenizer_cache_files()  # before the slow part: a missing file fails fast
    file = checkpoint_dir / "checkpoint.pt"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise ExportError(f"cannot read {file} ({type(e).__name__}: {str(e)[:200]})") from None
    config, step, tokens = state.get("config") or {}, int(state.get("step", 0)), int(state.get("tokens", 0))
    model = config.get("model")
    if not isinstance(model, dict) or model.get("vocab_size", 0) < GPT2_VOCAB:
        raise ExportError(f"{file} holds no GPT-2 model config (model.vocab_size >= {GPT2_VOCAB})")
    weights = hf_state_dict(state["model"], model["n_layer"])
    del state
    with staged_dir(out) as tmp:
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", hf_config(model))
        _write_json(tmp / "generation_config.json", {"bos_token_id": EOT_ID, "eos_token_id": EOT_ID})
        for target, source in tokenizer.items():
            shutil.copyfile(source, tmp / target)
        for target, data in tokenizer_configs(model["block_size"]).items():
            _write_json(tmp / target, data)
        card = model_card(name, config, step, tokens, run_results(events, step), _config_toml(checkpoint_dir))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return out


def _config_toml(checkpoint_dir: Path) -> str:
    """The checkpoint's config.toml without its comment lines (the help text of every key)."""
    try:
        text = (checkpoint_dir / "config.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
