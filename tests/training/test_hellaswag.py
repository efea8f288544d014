"""HellaSwag: reading the official file, rendering like build-nanogpt, and scoring with known answers."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from tui_trainer.training.lib.evaluation import logits_at, run_hellaswag_eval
from tui_trainer.training.lib.hellaswag import (load_hellaswag, read_hellaswag, render_example,
                                                select_examples)
from tui_trainer.training.lib.sources import DataError
from tui_trainer.training.lib.tokenizer import get_tokenizer

from .data_helpers import UnigramModel, make_cfg, token_losses

CPU = torch.device("cpu")
NO_AUTOCAST = __import__("contextlib").nullcontext


def test_real_validation_file_has_10042_examples(shared_data, tmp_path):
    cfg = make_cfg(tmp_path, f"eval.hellaswag_path={shared_data / 'hellaswag_val.jsonl.gz'}")
    examples = load_hellaswag(cfg)
    assert len(examples) == 10042
    assert examples[0] == {"ctx": "A man is sitting on a roof. he", "label": 3,
                           "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                                       "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}
    # Plain .jsonl reads the same; a subset is spread over the whole file.
    plain = tmp_path / "hellaswag_val.jsonl"
    with gzip.open(shared_data / "hellaswag_val.jsonl.gz", "rb") as f:
        plain.write_bytes(f.read())
    assert read_hellaswag(plain) == examples
    subset = load_hellaswag(make_cfg(tmp_path, f"eval.hellaswag_path={plain}", "eval.hellaswag_examples=100"))
    assert len(subset) == 100 and subset[0] == examples[0] and subset[-1] == examples[99 * 10042 // 100]


def test_select_examples_spreads_evenly():
    items = [{"i": i} for i in range(10)]
    assert [e["i"] for e in select_examples(items, 4)] == [0, 2, 5, 7]
    assert select_examples(items, 0) == items and select_examples(items, 99) == items


def test_bad_lines_and_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": 1}) + "\n"
                   + json.dumps({"ctx": "c", "endings": ["a", "b", "c"], "label": 1}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl, line 2: not a HellaSwag example"):
        read_hellaswag(bad)
    with pytest.raises(DataError, match="eval.hellaswag_path = .* does not exist"):
        load_hellaswag(make_cfg(tmp_path, f"eval.hellaswag_path={tmp_path / 'none.jsonl'}"))


def test_render_matches_build_nanogpt_and_crops_from_the_left():
    enc = get_tokenizer()
    example = {"ctx": "A man is sitting on a roof. he", "endings": ["a", "bb", "is ripping level tiles off.", "d"],
               "label": 2}
    rows, masks, label = render_example(example, enc, block_size=1024)
    ctx = enc.encode(example["ctx"])
    end = enc.encode(" is ripping level tiles off.")
    assert rows[2] == ctx + end and masks[2] == [0] * len(ctx) + [1] * len(end) and label == 2
    rows, masks, _ = render_example(example, enc, block_size=6)
    assert rows[2] == (ctx + end)[-6:] and masks[2] == [0] * (6 - len(end)) + [1] * len(end)


def _answer_fixture(enc):
    """Three examples and a unigram bias with known winners:
    0: ending 1 is clearly best (acc and acc_norm right);
    1: label = the 1-token ending: lowest TOTAL loss, but the 3-token ending has the lower MEAN (only acc right);
    2: the same endings with label = the 3-token ending (only acc_norm right)."""
    bias = torch.zeros(50304)
    best, short, long_ = " purple elephants dance", " cat", " quick brown fox"
    for token in enc.encode(best):
        bias[token] = 12.0
    (short_token,) = enc.encode(short)
    bias[short_token] = 8.0
    for token in enc.encode(long_):
        bias[token] = 9.0
    filler = ["nothing here at all", "completely unrelated words", "more filler text"]
    examples = [
        {"ctx": "At the zoo,", "endings": [filler[0], best.strip(), filler[1], filler[2]], "label": 1},
        {"ctx": "The animal was a", "endings": [filler[0], short.strip(), long_.strip(), filler[1]], "label": 1},
        {"ctx": "The animal was a", "endings": [filler[0], short.strip(), long_.strip(), filler[1]], "label": 2},
    ]
    losses = token_losses(bias)
    assert losses[short_token] < sum(losses[t] for t in enc.encode(long_))  # total favours the short ending
    assert losses[short_token] > max(losses[t] for t in enc.encode(long_))  # mean favours the long one
    return examples, bias


def test_known_answers_with_controlled_logits(tmp_path):
    enc = get_tokenizer()
    examples, bias = _answer_fixture(enc)
    path = tmp_path / "fixture.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    loaded = load_hellaswag(make_cfg(tmp_path, f"eval.hellaswag_path={path}"))
    model = UnigramModel(bias)
    result = run_hellaswag_eval(model, loaded, CPU, NO_AUTOCAST, 0, 1)
    assert result == {"correct": 2, "correct_norm": 2, "total": 3, "acc": 2 / 3, "acc_norm": 2 / 3}
    assert model.training  # the model's mode is restored


def _reference_predictions(examples, bias, enc, block_size):
    """Loop-by-loop scoring of each row, to check the batched implementation against."""
    losses = token_losses(bias)
    correct = correct_norm = 0
    for ex in examples:
        rows, masks, label = render_example(ex, enc, block_size)
        totals, means = [], []
        for row, mask in zip(rows, masks):
            terms = [float(losses[row[i]]) for i in range(1, len(row)) if mask[i]]
            totals.append(sum(terms))
            means.append(sum(terms) / len(terms))
        correct += min(range(4), key=totals.__getitem__) == label
        correct_norm += min(range(4), key=means.__getitem__) == label
    return correct, correct_norm


def test_batched_scoring_matches_a_reference_and_ranks_add_up(shared_data):
    enc = get_tokenizer()
    examples = select_examples(read_hellaswag(shared_data / "hellaswag_val.jsonl.gz"), 24)
    bias = torch.randn(50304, generator=torch.Generator().manual_seed(0)) * 3
    model = UnigramModel(bias, block_size=48)  # short enough that some rows are cropped
    whole = run_hellaswag_eval(model, examples, CPU, NO_AUTOCAST, 0, 1)
    assert (whole["correct"], whole["correct_norm"]) == _reference_predictions(examples, bias, enc, 48)
    one_per_batch = run_hellaswag_eval(model, examples, CPU, NO_AUTOCAST, 0, 1, batch_tokens=1)
    assert one_per_batch == whole
    halves = [run_hellaswag_eval(model, examples, CPU, NO_AUTOCAST, r, 2) for r in range(2)]
    assert [h["total"] for h in halves] == [12, 12]
    assert sum(h["correct"] for h in halves) == whole["correct"]
    assert sum(h["correct_norm"] for h in halves) == whole["correct_norm"]


def test_gpt_fast_path_scores_like_the_full_logits(shared_data):
    from tui_trainer.training.lib.config import ModelConfig
    from tui_trainer.training.lib.model import GPT
    torch.manual_seed(0)
    gpt = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=128))

    class LogitsOnly(torch.nn.Module):  # the contract's forward and nothing else
        def __init__(self, inner):
            super().__init__()
            self.inner, self.transformer = inner, inner.transformer

        def forward(self, idx, targets=None):
            return self.inner(idx, targets)

    idx = torch.randint(0, 50257, (3, 20))
    rows, pos = torch.tensor([0, 1, 2, 2]), torch.tensor([5, 0, 19, 3])
    with torch.no_grad():
        assert torch.allclose(logits_at(gpt, idx, rows, pos), logits_at(LogitsOnly(gpt), idx, rows, pos),
                              atol=1e-5)
    examples = select_examples(read_hellaswag(shared_data / "hellaswag_val.jsonl.gz"), 12)
    fast = run_hellaswag_eval(gpt, examples, CPU, NO_AUTOCAST, 0, 1)
    full = run_hellaswag_eval(LogitsOnly(gpt), examples, CPU, NO_AUTOCAST, 0, 1)
    assert fast["total"] == full["total"] == 12
    assert abs(fast["correct"] - full["correct"]) <= 1 and abs(fast["correct_norm"] - full["correct_norm"]) <= 1
