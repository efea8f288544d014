"""`gpt-console export RUN --hf DIR`: a real run's checkpoint, loaded by transformers with no code of ours,
gives our model's logits, greedy text and HellaSwag counts; the tokenizer files are tiktoken's own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from tui_trainer.cli import main
from tui_trainer.runs import RunStore
from tui_trainer.training.lib.config import ModelConfig
from tui_trainer.training.lib.evaluation import run_hellaswag_eval
from tui_trainer.training.lib.hellaswag import read_hellaswag, select_examples
from tui_trainer.training.lib.model import GPT
from tui_trainer.training.lib.tokenizer import get_tokenizer, tiktoken_cache_dir

from . import harness as H

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

GPT2_VOCAB = 50257
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """A 20-step run with checkpoints at 10 and 20, validation and HellaSwag (50 examples) at 20."""
    work = tmp_path_factory.mktemp("hf")
    corpus = H.write_corpus(work)
    config = H.write_config(work, corpus, work / "shards")
    store = RunStore(work / "runs")
    run = store.create("hf")
    r = H.run_trainer(config, run.dir, "schedule.max_steps=20", "checkpoint.every=10", "eval.every=20",
                      "eval.hellaswag_every=20", "eval.hellaswag_examples=50",
                      f"eval.hellaswag_path={shared_data / 'hellaswag_val.jsonl.gz'}", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = work / "hf-out"
    assert main(["export", run.id, "--hf", str(out), "--runs-root", str(store.root)]) == 0
    return {"store": store, "run": run, "out": out, "work": work, "shared": shared_data}


def _ours(run, step: int) -> GPT:
    state = torch.load(run.dir / "checkpoints" / f"step-{step:08d}" / "checkpoint.pt", weights_only=True)
    model = GPT(ModelConfig(**state["config"]["model"]))
    model.load_state_dict(state["model"])
    return model.eval()


def _hf(path: Path):
    return transformers.GPT2LMHeadModel.from_pretrained(path, torch_dtype=torch.float32).eval()


def _real_text(shared: Path, tokens: int) -> list[int]:
    text = (shared / "tinyshakespeare.txt").read_text(encoding="utf-8")[5000:7000]
    return get_tokenizer().encode(text)[:tokens]


def test_transformers_loads_it_and_gives_our_logits(trained):
    ours, theirs = _ours(trained["run"], 20), _hf(trained["out"])
    assert theirs.config.vocab_size == GPT2_VOCAB and theirs.config.n_positions == 32
    ids = torch.tensor([_real_text(trained["shared"], 32), _real_text(trained["shared"], 64)[32:]])
    with torch.no_grad():
        expected = ours(ids)[0][..., :GPT2_VOCAB]
        got = theirs(ids).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.std().item() > 0.1  # a model that says something, not all-equal logits


def test_the_same_greedy_continuation(trained):
    ours, theirs = _ours(trained["run"], 20), _hf(trained["out"])
    prompt = _real_text(trained["shared"], 8)
    idx = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(20):
            logits = ours(idx)[0][0, -1, :GPT2_VOCAB]
            idx = torch.cat([idx, logits.argmax().view(1, 1)], dim=1)
        generated = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                    pad_token_id=50256)
    assert generated[0].tolist() == idx[0].tolist()


class _HFAsOurs(torch.nn.Module):
    """The loaded HF model behind the interface our evaluation calls: ``(logits, loss) = model(idx)``."""

    def __init__(self, hf):
        super().__init__()
        self.hf, self.transformer = hf, hf.transformer  # transformer.wpe: the evaluation's context size

    def forward(self, idx):
        return self.hf(idx).logits, None


def test_hellaswag_counts_are_equal_on_50_examples(trained):
    examples = select_examples(read_hellaswag(trained["shared"] / "hellaswag_val.jsonl.gz"), 50)
    args = (torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False), 0, 1)
    ours = run_hellaswag_eval(_ours(trained["run"], 20), examples, *args)
    theirs = run_hellaswag_eval(_HFAsOurs(_hf(trained["out"])), examples, *args)
    assert ours["total"] == theirs["total"] == 50
    assert (ours["correct"], ours["correct_norm"]) == (theirs["correct"], theirs["correct_norm"])


def test_tokenizer_files_are_tiktokens_and_autotokenizer_matches_it(trained):
    out = trained["out"]
    cache = Path(tiktoken_cache_dir())
    for name, source in (("vocab.json", "encoder.json"), ("merges.txt", "vocab.bpe")):
        url = f"https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{source}"
        assert (out / name).read_bytes() == (cache / hashlib.sha1(url.encode()).hexdigest()).read_bytes()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    text = (trained["shared"] / "tinyshakespeare.txt").read_text(encoding="utf-8")[:3000]
    assert tokenizer(text)["input_ids"] == get_tokenizer().encode(text)
    assert tokenizer.decode(get_tokenizer().encode(text)) == text
    assert tokenizer.eos_token_id == 50256


def test_config_and_model_card(trained):
    out, run = trained["out"], trained["run"]
    config = json.loads((out / "config.json").read_text())
    assert (config["n_layer"], config["n_head"], config["n_embd"]) == (2, 2, 32)
    assert config["activation_function"] == "gelu_new" and config["resid_pdrop"] == 0.0
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 50256
    events = H.read_events(run.dir)
    val = [e for e in events if e["type"] == "val" and e["step"] == 20][-1]
    hellaswag = [e for e in events if e["type"] == "hellaswag"][-1]
    card = (out / "README.md").read_text()
    assert f"| validation loss | {val['loss']:.4f} (step 20) |" in card
    row = f"| HellaSwag acc_norm | {hellaswag['acc_norm']:.4f} ({hellaswag['correct_norm']}/50, step 20)"
    assert row in card
    assert "| tokens seen | 5,120 |" in card and "| steps | 20 |" in card
    assert "n_layer = 2" in card


def test_step_picks_a_checkpoint_and_bad_requests_are_one_message(trained, capsys):
    store, run, work = trained["store"], trained["run"], trained["work"]
    root = ["--runs-root", str(store.root)]
    out10 = work / "hf-10"
    assert main(["export", run.id, "--hf", str(out10), "--step", "10", *root]) == 0
    from safetensors.torch import load_file
    wpe = load_file(out10 / "model.safetensors")["wpe.weight"]
    assert torch.equal(wpe, _ours(run, 10).transformer.wpe.weight)
    assert not torch.equal(wpe, _ours(run, 20).transformer.wpe.weight)

    capsys.readouterr()
    assert main(["export", run.id, "--hf", str(work / "hf-7"), "--step", "7", *root]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint for step 7" in err and "10, 20" in err and "Traceback" not in err
    assert not (work / "hf-7").exists()

    keep = work / "taken"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert main(["export", run.id, "--hf", str(keep), *root]) == 1
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in keep.iterdir()] == ["notes.txt"] and (keep / "notes.txt").read_text() == "mine"


def test_without_tiktokens_cached_files_the_message_says_where_to_point(trained, capsys, monkeypatch,
                                                                        tmp_path):
    get_tokenizer()  # loaded (and verified) once; the files then go missing
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    out = tmp_path / "hf"
    root = ["--runs-root", str(trained["store"].root)]
    assert main(["export", trained["run"].id, "--hf", str(out), *root]) == 1
    err = capsys.readouterr().err
    assert "TIKTOKEN_CACHE_DIR" in err and "vocab.json" in err and "Traceback" not in err
    assert not out.exists()
