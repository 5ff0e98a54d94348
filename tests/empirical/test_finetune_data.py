"""Plain-text and chat fine-tuning data: the reader's shapes, the token labels against a mask built by hand, and the
loss ``finetune`` trains on against that mask on a tiny float64 model."""

from __future__ import annotations

import json

import pytest
import torch

from elastic_theory.data.corpora import LabelledText
from elastic_theory.data.training_data import ChatExample, read_training_jsonl
from elastic_theory.empirical import byte_bpe_tokenizer, tiny_gpt2
from elastic_theory.empirical.finetune_data import IGNORE, chat_segments, lm_example, lm_examples

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
"""A minimal chat template: each turn is ``<|role|>content`` and a newline; the generation prompt is ``<|assistant|>``."""
CHAT = ({"role": "system", "content": "S"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"})


@pytest.fixture(scope="module")
def byte_tok():
    """Bytes only (vocab 257: no merges), so token i is character i of ASCII text and a mask can be written by hand."""
    tok = byte_bpe_tokenizer(["abc"], vocab_size=257)
    tok.chat_template = TEMPLATE
    return tok


def test_chat_labels_are_the_assistant_turns_token_by_token(byte_tok):
    """Hand-built: the rendering is the five turns; the trained characters are 'ok\\n' and 'yes\\n' (the turn's
    end-of-turn newline included, the '<|assistant|>' prompt excluded). Kills a mask on every token, on the content
    without the end-of-turn marker, one that includes the generation prompt, one shifted by a token, and one that
    marks the user turns."""
    full = "<|system|>S\n<|user|>hi\n<|assistant|>ok\n<|user|>q\n<|assistant|>yes\n"
    ids, labels = lm_example(byte_tok, ChatExample("c", CHAT), max_length=1000)
    assert ids == byte_tok(full, add_special_tokens=False).input_ids and len(ids) == len(full)
    trained = [(0, len("<|system|>S\n<|user|>hi\n<|assistant|>")), (len("<|system|>S\n<|user|>hi\n<|assistant|>ok\n<|user|>q\n<|assistant|>"), len(full))]
    trained.insert(1, (trained[0][0], trained[0][0] + len("ok\n")))
    expected = [IGNORE] * len(full)
    for start, end in ((trained[0][1], trained[0][1] + len("ok\n")), (trained[2][0], trained[2][1])):
        expected[start:end] = ids[start:end]
    assert "".join(full[i] for i, lab in enumerate(expected) if lab != IGNORE) == "ok\nyes\n"
    assert labels == expected
    assert [s for s, a in chat_segments(byte_tok, CHAT) if a] == ["ok\n", "yes\n"]
    cut_ids, cut_labels = lm_example(byte_tok, ChatExample("c", CHAT), max_length=40)
    assert cut_ids == ids[:40] and cut_labels == expected[:40]


def test_text_labels_are_every_token_and_eos(byte_tok):
    ids, labels = lm_example(byte_tok, LabelledText("t", "plain text"), max_length=100)
    assert ids == byte_tok("plain text", add_special_tokens=False).input_ids + [byte_tok.eos_token_id]
    assert labels == [IGNORE] + ids[1:] and len(ids) == len("plain text") + 1  # the first token is never predicted


def test_untrainable_chat_examples_are_refused(byte_tok):
    late = ChatExample("late.jsonl:1", ({"role": "user", "content": "x" * 50}, {"role": "assistant", "content": "y"}))
    with pytest.raises(ValueError, match="1 of 1 examples have no trained token within max_length 20 .*late.jsonl:1"):
        lm_examples(byte_tok, [late], 20)
    plain = byte_bpe_tokenizer(["abc"], vocab_size=257)
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        lm_example(plain, ChatExample("c", CHAT), 100)
    plain.chat_template = "{{ messages|length }}:" + TEMPLATE  # the count in front: no rendering is a prefix of another
    with pytest.raises(ValueError, match="assistant turns cannot be found"):
        lm_example(plain, ChatExample("c", CHAT), 100)


def test_reader_tells_the_shapes_apart_and_names_the_bad_line(tmp_path):
    def write(name, records):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    texts = read_training_jsonl(write("t.jsonl", [{"text": "a"}, {"text": "b"}]))
    assert [type(x) for x in texts] == [LabelledText, LabelledText] and texts[1].text == "b"
    chats = read_training_jsonl(write("c.jsonl", [{"messages": list(CHAT)}]))
    assert chats == [ChatExample(f"{tmp_path / 'c.jsonl'}:1", CHAT)]
    pairs = read_training_jsonl(write("p.jsonl", [{"prompt": "p", "aligned": "a", "unaligned": "u"}]))
    assert pairs[0].aligned == "a"
    for records, message in (
        ([{"text": "a"}, {"messages": list(CHAT)}], "t.jsonl:2: every record must have the first record's shape (text"),
        ([{"messages": list(CHAT)}, {"text": "a"}], ":2: every record must have the first record's shape (messages"),
        ([{"messages": [{"role": "user", "content": "q"}]}], ":1: the conversation has no assistant turn"),
        ([{"messages": [{"role": "robot", "content": "q"}]}], ":1: message 0 must be an object with a role"),
        ([{"text": ""}], ":1: expected a JSON object with a non-empty string field 'text'"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", "\\(")):
            read_training_jsonl(write("t.jsonl", records))


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory, byte_tok):
    root = tmp_path_factory.mktemp("chat")
    model = tiny_gpt2(byte_tok, seed=0, n_layer=1, n_embd=16, n_head=2, n_positions=128).to(torch.float64)
    model.save_pretrained(root / "model")
    byte_tok.save_pretrained(root / "model")
    chats = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "no" * (1 + i % 3)},
                           {"role": "user", "content": "why"}, {"role": "assistant", "content": f"because {i}"}]}
             for i in range(12)]
    (root / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    (root / "text.jsonl").write_text("".join(json.dumps({"text": f"line number {i} of the text"}) + "\n" for i in range(12)))
    return root


@pytest.mark.slow  # two fine-tuning runs of a tiny model through the trainer
@pytest.mark.parametrize("data", ["chat.jsonl", "text.jsonl"])
def test_finetune_trains_on_exactly_the_labelled_tokens(chat_model, tmp_path, data):
    """The first step's loss is the initial model's mean cross-entropy (nats) over the labelled tokens of the first
    batch, computed here in float64 from the labels the hand-built test checks. The trainer computes it in float32
    (transformers' causal-LM loss casts the logits to float32): each logit rounded (relative U32 = 2**-24, moving a
    token's cross-entropy by at most 2 U32 max|logit|, logits of this untrained model are below 1), a float32 sum
    of `count` terms (within (count - 1) U32 of the sum) and the logged value rounded once: (count + 4) U32 relative
    bounds it. At about 60 tokens that is 4e-6; any other mask is far outside (the all-token loss differs by 0.4%;
    counting the never-predicted first token in the denominator, as the trainer does for a label there, by 1/26)."""
    from typer.testing import CliRunner

    from elastic_theory.cli import app
    from elastic_theory.cli.finetune_cmd import training_split
    from elastic_theory.empirical import load_model_and_tokenizer

    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "finetune", "--model", str(chat_model / "model"), "--data", str(chat_model / data), "--algorithm", "sft",
        "--set", "batch_size=3", "--set", "max_length=64", "--set", "lr=1e-3", "--n-train", "3", "--n-measure", "2",
        "--device", "cpu", "--dtype", "float64", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "result.json").read_text())
    assert report["data"]["format"] == ("messages" if data == "chat.jsonl" else "text") and report["target"] is None
    model, tok = load_model_and_tokenizer(chat_model / "model", device="cpu", dtype="float64")
    train = training_split(str(chat_model / data), n_measure=2, n_train=3, seed=0).train
    assert [x.name for x in train] == report["data"]["train"]
    total, count, everything, all_count = 0.0, 0, 0.0, 0
    with torch.no_grad():
        for x in train:
            ids, labels = lm_example(tok, x, 64)
            logits = model(torch.tensor([ids])).logits[0, :-1]
            assert float(logits.abs().max()) < 1  # the premise of the tolerance below
            logp = torch.log_softmax(logits, dim=-1)
            nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
            keep = torch.tensor(labels[1:]) != IGNORE
            total, count = total + float(nll[keep].sum()), count + int(keep.sum())
            everything, all_count = everything + float(nll.sum()), all_count + len(ids) - 1
    assert report["losses"][0] == pytest.approx(total / count, rel=(count + 4) * 2.0**-24)
    if data == "chat.jsonl":
        assert abs(everything / all_count - total / count) > 100 * (count + 4) * 2.0**-24 * total / count


def test_dpo_and_target_are_refused_for_text_data(chat_model, tmp_path):
    from typer.testing import CliRunner

    from elastic_theory.cli import app

    base = ["finetune", "--model", str(chat_model / "model"), "--data", str(chat_model / "text.jsonl"), "--n-train", "3",
            "--n-measure", "2", "--set", "batch_size=3", "--no-progress", "--device", "cpu", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*base, "--algorithm", "dpo"])
    assert result.exit_code == 2 and "--algorithm dpo needs preference pairs" in result.output
    result = CliRunner().invoke(app, [*base, "--algorithm", "sft", "--target", "unaligned"])
    assert result.exit_code == 2 and "--target applies to preference pairs" in result.output
    assert not (tmp_path / "r").exists()


def test_prompt_text_uses_the_chat_template_when_there_is_one_and_plain_text_otherwise():
    """A chat model's prompt is its template's one-turn user message with the generation prompt; a model without a
    template (a pre-trained base such as gemma3-270m, whose real tokenizer tests/empirical/test_gemma3.py checks)
    gets ``prompt + "\\n"``. kills: a template applied to every model (a base has none to apply; transformers would
    raise), the plain format for a chat model (it would be trained off its turn format), no separator (the response
    would run on from the prompt's last word and could merge with it into one token)."""
    from elastic_theory.empirical.finetune import prompt_text

    plain = byte_bpe_tokenizer(["abc"], vocab_size=257)
    chat = byte_bpe_tokenizer(["abc"], vocab_size=257)
    chat.chat_template = TEMPLATE
    assert plain.chat_template is None and prompt_text(plain, "Why?") == "Why?\n"
    assert prompt_text(chat, "Why?") == "<|user|>Why?\n<|assistant|>"
