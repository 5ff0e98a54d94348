"""``elastic-theory models``: the built-in models' cache keyed by the source file's content, stale copies and their
pruning, and ``models export`` as a plain folder. A fake built-in entry (a small source file converted into a tiny
Llama) stands in for SmolLM2; the real model's export is tested in tests/empirical/test_smollm2_safetensors_cache.py.
"""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.empirical import builtin_models
from elastic_theory.empirical.builtin_models import BuiltinModel, builtin_copy, prune_stale, stale_copies

runner = CliRunner()
NAME = "tiny-builtin"
TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A built-in entry whose source file is ``src/weights.bin`` and whose conversion writes a tiny Llama (seeded by
    the file's bytes, so another file gives other weights) with its tokenizer and a chat template; counts conversions."""
    from elastic_theory.empirical import byte_bpe_tokenizer
    from elastic_theory.empirical.tiny import tiny_llama

    src = tmp_path / "src" / "weights.bin"
    src.parent.mkdir()
    src.write_bytes(b"version 1")
    calls = []

    def convert(source, out):
        calls.append(source)
        tok = byte_bpe_tokenizer(["a small text", "another small text"], vocab_size=260)
        tok.chat_template = TEMPLATE
        tiny_llama(tok, seed=sum(source.read_bytes()), hidden=16).save_pretrained(out)
        tok.save_pretrained(out)

    entry = BuiltinModel(NAME, "llama", 1234, "MIT", "a fake built-in model", "nothing", "pip install nothing", lambda: src, convert,
                         pretrain_tokens=1e9, pretrain_source="a fake model card")
    monkeypatch.setattr(builtin_models, "BUILTIN_MODELS", {NAME: entry})
    monkeypatch.setenv("ELASTIC_THEORY_CACHE", str(tmp_path / "cache"))
    return src, calls, tmp_path / "cache" / "models"


def test_copy_is_keyed_by_the_content_and_survives_a_reinstall(fake):
    """A reinstall (same bytes, new mtime) reuses the copy: a key of size and mtime (the old one) converts again. A
    changed file of the same size gets a new copy: a key of name or size alone would reuse the old weights."""
    src, calls, models = fake
    first = builtin_copy(NAME)
    assert first.parent == models and first.name.startswith(f"{NAME}-sha256-") and len(calls) == 1
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))  # the reinstall
    assert builtin_copy(NAME) == first and len(calls) == 1
    src.write_bytes(b"version 2")  # same size, other content
    second = builtin_copy(NAME)
    assert second != first and len(calls) == 2
    assert sorted(p.name for p in models.iterdir()) == sorted([first.name, second.name])  # no temporary folder left


def test_stale_copies_are_listed_and_pruned_and_nothing_else(fake):
    src, calls, models = fake
    old = builtin_copy(NAME)
    src.write_bytes(b"a newer file")
    current = builtin_copy(NAME)
    legacy = models / f"{NAME}-98362432-1796689641324349804"  # the size-and-mtime key of before
    legacy.mkdir()
    dead_tmp = models / f".{current.name}.999999999.tmp"  # an interrupted conversion (no such process)
    live_tmp = models / f".{current.name}.{os.getpid()}.tmp"  # one in progress: kept
    other = models / "another-model-sha256-0"
    for p in (dead_tmp, live_tmp, other):
        p.mkdir()
    assert stale_copies() == sorted([old, legacy, dead_tmp])
    res = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert all(f"stale: {p}" in res.stdout for p in (old, legacy, dead_tmp)) and f"stale: {current}" not in res.stdout
    assert "3 stale copies; remove with: elastic-theory models --prune" in res.stdout
    assert old.is_dir()  # listing removes nothing
    res = runner.invoke(app, ["models", "--prune"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "3 stale copies removed" in res.stdout
    assert sorted(p.name for p in models.iterdir()) == sorted([current.name, live_tmp.name, other.name])
    assert prune_stale() == []


def test_models_lists_name_family_parameters_source_license_cached_copy_and_size(fake):
    src, calls, models = fake
    res = runner.invoke(app, ["models"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if NAME in line)
    assert all(word in row for word in ("llama", "1,234", "MIT", str(src), "not yet converted")), row
    assert not calls  # listing converts nothing
    copy = builtin_copy(NAME)
    size = sum(p.stat().st_size for p in copy.iterdir())
    row = next(line for line in runner.invoke(app, ["models"], env={"COLUMNS": "300"}).stdout.splitlines() if NAME in line)
    assert str(copy) in row and f"{size / 1e6:.0f} MB" in row, row


def test_export_writes_a_folder_plain_transformers_loads_and_trains(fake, tmp_path):
    """The exported folder is the cached copy: the same weights, the tokenizer and its chat template, and a
    training step through plain transformers changes the weights (it is not a GGUF-backed, frozen model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, calls, models = fake
    out = tmp_path / "exported"
    res = runner.invoke(app, ["models", "export", NAME, str(out)])
    assert res.exit_code == 0, res.output
    assert f"{NAME} written to {out}" in " ".join(res.stdout.split())
    model = AutoModelForCausalLM.from_pretrained(out)
    cached = AutoModelForCausalLM.from_pretrained(builtin_copy(NAME))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), cached.state_dict().values()))
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<user>hi"
    batch = tok(["a small text"], return_tensors="pt")
    model.train()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    before = model.lm_head.weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.lm_head.weight)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize(("args", "message"), [
    (["models", "export", "no-such-model", "{tmp}/out"], "error: no built-in model 'no-such-model' (built in: tiny-builtin)"),
    (["models", "export", NAME, "{tmp}/full"], "error: {tmp}/full exists and is not an empty folder; give a new folder to export into"),
    (["models", "--prune", "export", NAME, "{tmp}/out"], "error: --prune goes without a subcommand: elastic-theory models --prune"),
])
def test_bad_input_is_one_line_and_converts_nothing(fake, tmp_path, args, message):
    src, calls, models = fake
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    res = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2 and res.stderr == message.format(tmp=tmp_path) + "\n"
    assert not calls and not (tmp_path / "out").exists() and (tmp_path / "full" / "keep.txt").read_text() == "mine"
