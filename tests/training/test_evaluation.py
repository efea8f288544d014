"""Validation loss and sampling (HellaSwag scoring is in test_hellaswag.py), plus all three under 2 gloo ranks."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from tui_trainer.training.lib.data import ShardLoader
from tui_trainer.training.lib.evaluation import evaluate_loss, generate_samples, run_hellaswag_eval
from tui_trainer.training.lib.hellaswag import read_hellaswag, select_examples
from tui_trainer.training.lib.shards import list_shards
from tui_trainer.training.lib.tokenizer import get_tokenizer

from .data_helpers import UnigramModel, token_losses, write_shards

CPU = torch.device("cpu")
NO_AUTOCAST = contextlib.nullcontext
PROMPT = "Hello, I'm a language model,"


def _val_loader(tmp_path, rank=0, world=1) -> ShardLoader:
    if not (tmp_path / "shards").exists():
        write_shards(tmp_path / "shards", 200, [100])
    return ShardLoader(list_shards(tmp_path / "shards", "val"), 2, 8, rank, world)


def test_evaluate_loss_is_the_mean_over_the_first_windows(tmp_path):
    bias = torch.randn(50304, generator=torch.Generator().manual_seed(1))
    model = UnigramModel(bias)
    loader = _val_loader(tmp_path)
    loader.next_batch()  # wherever the loader was, evaluation starts from the first window
    losses = token_losses(bias)
    # Val tokens are 0..199; window k predicts tokens 16k+1 .. 16k+16.
    expected = torch.stack([losses[16 * k + 1:16 * k + 17].mean() for k in range(3)]).mean()
    got = evaluate_loss(model, loader, 3, CPU, NO_AUTOCAST)
    assert isinstance(got, float) and got == pytest.approx(float(expected), rel=1e-5)
    assert evaluate_loss(model, loader, 3, CPU, NO_AUTOCAST) == got  # same windows every time
    assert model.training
    model.eval()
    evaluate_loss(model, loader, 1, CPU, NO_AUTOCAST)
    assert not model.training  # the previous mode is restored, whatever it was


def test_samples_are_deterministic_per_seed_and_leave_the_global_rng_alone():
    enc = get_tokenizer()
    model = UnigramModel(torch.randn(50304, generator=torch.Generator().manual_seed(2)))
    rng_before = torch.get_rng_state()
    a = generate_samples(model, enc, PROMPT, 3, 10, 50, 1.0, 42, CPU, NO_AUTOCAST)
    assert torch.equal(torch.get_rng_state(), rng_before)
    b = generate_samples(model, enc, PROMPT, 3, 10, 50, 1.0, 42, CPU, NO_AUTOCAST)
    c = generate_samples(model, enc, PROMPT, 3, 10, 50, 1.0, 43, CPU, NO_AUTOCAST)
    assert a == b and a != c
    assert len(a) == 3 and len(set(a)) == 3  # a batch of different samples
    assert all(len(enc.encode(t)) <= 12 and not t.startswith(PROMPT) for t in a)  # prompt excluded


def test_a_prompt_or_hellaswag_text_naming_the_special_token_is_plain_text():
    """A user may type "<|endoftext|>" into a sample prompt (or a HellaSwag file may hold it): it is encoded as
    the characters it is, never refused by tiktoken mid-run."""
    from tui_trainer.training.lib.hellaswag import render_example
    enc = get_tokenizer()
    model = UnigramModel(torch.randn(50304, generator=torch.Generator().manual_seed(5)))
    texts = generate_samples(model, enc, "a <|endoftext|> b", 2, 4, 50, 1.0, 1, CPU, NO_AUTOCAST)
    assert len(texts) == 2
    example = {"ctx": "x <|endoftext|>", "endings": ["a", "b", "c", "<|endoftext|>"], "label": 0}
    rows, masks, label = render_example(example, enc, 64)
    assert len(rows) == 4 and label == 0 and sum(masks[3]) > 1  # the characters, not one special token


def test_top_k_one_is_greedy_and_padded_vocab_is_never_sampled():
    enc = get_tokenizer()
    bias = torch.zeros(50304)
    bias[50300] = 100.0  # a padding row the tokenizer cannot decode
    (hello,) = enc.encode(" hello")
    bias[hello] = 50.0
    model = UnigramModel(bias)
    texts = generate_samples(model, enc, PROMPT, 2, 5, 1, 1.0, 0, CPU, NO_AUTOCAST)
    assert texts == [" hello" * 5] * 2


def test_long_generations_crop_the_context_to_block_size():
    enc = get_tokenizer()
    model = UnigramModel(torch.zeros(50304), block_size=8)  # raises if fed more than 8 tokens
    texts = generate_samples(model, enc, PROMPT + " and this prompt alone is longer than the context", 2, 12,
                             50, 0.8, 5, CPU, NO_AUTOCAST)
    assert len(texts) == 2 and model.calls == 12
    assert generate_samples(model, enc, "", 1, 3, 50, 1.0, 5, CPU, NO_AUTOCAST)  # empty prompt starts at EOT


def test_gpt_samples_with_bf16_autocast():
    from tui_trainer.training.lib.config import ModelConfig
    from tui_trainer.training.lib.model import GPT
    torch.manual_seed(0)
    gpt = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16))
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    texts = generate_samples(gpt, get_tokenizer(), PROMPT, 2, 6, 50, 1.0, 7, CPU, autocast)
    assert texts == generate_samples(gpt, get_tokenizer(), PROMPT, 2, 6, 50, 1.0, 7, CPU, autocast)
    assert all(isinstance(t, str) and t for t in texts)


# ----------------------------------------------------------------------------------- two gloo ranks
def _two_rank_worker(rank: int, world: int, init_file: str, tmp: str, hellaswag_path: str, out: str) -> None:
    import torch.distributed as dist
    from pathlib import Path
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        bias = torch.randn(50304, generator=torch.Generator().manual_seed(3))
        model = UnigramModel(bias, block_size=48)
        loss = evaluate_loss(model, _val_loader(Path(tmp), rank, world), 2, CPU, NO_AUTOCAST)
        examples = select_examples(read_hellaswag(hellaswag_path), 10)
        hs = run_hellaswag_eval(model, examples, CPU, NO_AUTOCAST, rank, world)
        Path(f"{out}.{rank}").write_text(json.dumps({"loss": loss, "hellaswag": hs}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_agree_with_one_process(tmp_path, shared_data):
    import torch.multiprocessing as mp
    hellaswag_path = str(shared_data / "hellaswag_val.jsonl.gz")
    _val_loader(tmp_path)  # write the shards once, before the workers read them
    out = str(tmp_path / "result")
    mp.spawn(_two_rank_worker, args=(2, str(tmp_path / "init"), str(tmp_path), hellaswag_path, out), nprocs=2)
    results = [json.loads((tmp_path / f"result.{r}").read_text()) for r in range(2)]
    assert results[0] == results[1]  # every rank gets the all-reduced figures

    bias = torch.randn(50304, generator=torch.Generator().manual_seed(3))
    model = UnigramModel(bias, block_size=48)
    # Two ranks x 2 steps read windows 0..3, as one rank x 4 steps does.
    single_loss = evaluate_loss(model, _val_loader(tmp_path), 4, CPU, NO_AUTOCAST)
    assert results[0]["loss"] == pytest.approx(single_loss, rel=1e-6)
    single_hs = run_hellaswag_eval(model, select_examples(read_hellaswag(hellaswag_path), 10), CPU, NO_AUTOCAST,
                                   0, 1)
    assert results[0]["hellaswag"] == single_hs and single_hs["total"] == 10
