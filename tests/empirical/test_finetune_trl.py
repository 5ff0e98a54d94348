"""Fine-tuning a causal LM through trl (SFT, DPO; full or LoRA) on tiny models built from a config.

Every check names, in a comment, the wrong implementation it rules out. Hand-built losses are
computed here from the model's own logits with the tokenization trl documents for
prompt-completion data (prompt ids, then completion ids, then EOS; prompt positions masked); the
tokenizer splits at the prompt's trailing newline, so tokenizing the concatenation equals
concatenating the tokenizations.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from elastic_theory.data.corpora import PreferencePair
from elastic_theory.empirical import RateTracker, load_model_and_tokenizer
from elastic_theory.empirical.finetune import finetune, prompt_text, run_finetune, save_checkpoint
from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2, tiny_llama
from elastic_theory.theory.tolerances import Float32Forward, sum_tolerance32
from elastic_theory.infra.trainconfig import FinetuneConfig

# Responses of different lengths, so that a per-sequence mean and a per-token mean differ.
PAIRS = [
    PreferencePair(f"p{i}", f"How do I do task {i}?", "I cannot help with that." + " Sorry." * (i % 3),
                   "Sure, here is how" + " step" * (i % 4 + 1), "")
    for i in range(8)
]
OTHER = {"aligned": "unaligned", "unaligned": "aligned"}

MAX_LENGTH = 64  # every config here: no sequence is longer, so it bounds the attention's length


@pytest.fixture(scope="module")
def tok():
    return byte_bpe_tokenizer([p.prompt + "\n" + p.aligned + p.unaligned for p in PAIRS])


def _ids(tok, prompt, response):
    """(input ids, number of prompt tokens) as trl builds them: prompt_text + response + EOS."""
    p = tok(prompt_text(tok, prompt)).input_ids
    return p + tok(response).input_ids + [tok.eos_token_id], len(p)


def _token_logps(model, tok, prompt, response):
    """log p of every response token (EOS included) given the prompt, in nats, shape (n,)."""
    ids, n_prompt = _ids(tok, prompt, response)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].double()
    lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return lp[n_prompt - 1:]


def logp(model, tok, pair, side):
    return float(_token_logps(model, tok, pair.prompt, getattr(pair, side)).sum())


def n_response_tokens(tok, batch, side) -> int:
    """Response tokens (EOS included) of the batch's ``side``: the positions a loss averages over."""
    return sum(len(ids) - n_prompt for ids, n_prompt in (_ids(tok, p.prompt, getattr(p, side)) for p in batch))


def float32_bounds(*models, lora: bool = False) -> Float32Forward:
    """Float32 bounds for these tiny models (a PEFT model read through its base model, adapters of rank 8)."""
    plain = [m.get_base_model() if hasattr(m, "get_base_model") else m for m in models]
    return Float32Forward.of(*plain, context=MAX_LENGTH, adapter_rank=FinetuneConfig().lora_r if lora else 0)


def loss_tolerance(model, n_tokens: int, loss: float) -> float:
    """Bound on |trainer's loss - hand loss| for a mean NLL over ``n_tokens`` response tokens.

    Two float32 forward passes (the trainer's padded batch, ours one sequence at a time), each mean within
    sum_tolerance(n)/n of exact; the trainer's float32 sum, division and accumulation of the loss add
    sum_tolerance32(n + 4, n loss)/n."""
    f32 = float32_bounds(model)
    return (2 * f32.sum_tolerance(n_tokens) + sum_tolerance32(n_tokens + 4, n_tokens * loss)) / n_tokens


def sft_loss(model, tok, batch, side):
    """Mean NLL per target token over the batch's response tokens (prompt masked)."""
    lps = [_token_logps(model, tok, p.prompt, getattr(p, side)) for p in batch]
    return float(-torch.cat(lps).mean())


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow  # 5 epochs of SFT
def test_sft_lowers_the_target_loss_and_favours_the_target(tok):
    model = tiny_llama(tok, seed=0)
    before = {s: sum(logp(model, tok, p, s) for p in PAIRS) for s in OTHER}
    res = run_finetune(model, tok, PAIRS, FinetuneConfig(lr=3e-3, batch_size=4, epochs=5, max_length=64))
    after = {s: sum(logp(res.model, tok, p, s) for p in PAIRS) for s in OTHER}
    # kills: no update, or an update that does not descend (sign error)
    assert res.losses[-1] < res.losses[0] - 1.0
    # kills: training on the other side (target and other swapped), or on both equally
    assert after["aligned"] - before["aligned"] > after["unaligned"] - before["unaligned"] + 5.0


def test_sft_losses_are_the_masked_per_token_loss_of_each_batch_in_order(tok):
    model = tiny_llama(tok, seed=1)
    cfg = FinetuneConfig(lr=1e-2, batch_size=1, max_length=64)
    data = PAIRS[:4]  # four different responses on each side (PAIRS[4:] repeat them with other prompts)
    seen = {}
    res = run_finetune(model, tok, data, cfg, target="unaligned",
                       on_step=lambda step, m: seen.setdefault(step, copy.deepcopy(m)))
    assert len(res.losses) == len(data)
    for i, p in enumerate(data):
        expected = sft_loss(seen[i], tok, [p], "unaligned")
        # kills, in units of the bound (measured gap: 1e-3 bounds): loss on prompt tokens too (87 bounds);
        # training on the aligned side (7); examples shuffled, step i seeing another example (4.3 at the
        # least: only the identity permutation passes)
        tol = loss_tolerance(seen[i], n_response_tokens(tok, [p], "unaligned"), expected)
        assert res.losses[i] == pytest.approx(expected, rel=0, abs=tol), i


@pytest.mark.slow  # pre-trains a tiny model for 3 epochs, then one SFT step
def test_sft_batch_loss_is_a_mean_over_tokens_not_over_sequences(tok):
    # Short, novel responses next to long repetitive ones, on a model trained on the long ones first:
    # per-token losses differ a lot between the two kinds, so the two means differ.
    longs = [PreferencePair(f"l{i}", PAIRS[i].prompt, " Sorry." * 8, "Sure", "") for i in range(4)]
    shorts = [PreferencePair("s0", "Why?", "No.", "Yes.", ""), PreferencePair("s1", "How?", "Not so.", "So.", "")]
    batch = [shorts[0], longs[0], shorts[1], longs[1]]
    pre = FinetuneConfig(lr=1e-2, batch_size=2, epochs=3, max_length=64)
    model = finetune(tiny_llama(tok, seed=2), tok, longs, pre)
    first = copy.deepcopy(model)
    res = run_finetune(model, tok, batch, FinetuneConfig(lr=1e-2, batch_size=4, max_length=64))
    per_token = sft_loss(first, tok, batch, "aligned")
    per_sequence = sum(sft_loss(first, tok, [p], "aligned") for p in batch) / 4
    tol = loss_tolerance(first, n_response_tokens(tok, batch, "aligned"), per_token)
    assert abs(per_token - per_sequence) > 100 * tol  # the two formulas differ on this batch (by 860 bounds)
    # kills: the mean of per-sequence means, or padding tokens counted in the mean (measured gap: 5e-4 bounds)
    assert res.losses[0] == pytest.approx(per_token, rel=0, abs=tol)


def test_lora_trains_the_adapter_only(tok):
    model = tiny_llama(tok, seed=3)
    base = weights(model)
    res = run_finetune(model, tok, PAIRS, FinetuneConfig(lora=True, lr=1e-2, batch_size=4, epochs=2, max_length=64))
    state = res.model.get_base_model().state_dict()
    lora = {k: v for k, v in state.items() if "lora_" in k}
    assert any("q_proj" in k for k in lora) and any("v_proj" in k for k in lora)
    # kills: lora=True ignored (every weight trained) or the base unfrozen next to the adapter
    for name, w in base.items():
        key = name
        for target in ("q_proj", "v_proj"):  # peft keeps the wrapped layer's weight under base_layer
            key = key.replace(f"{target}.weight", f"{target}.base_layer.weight")
        assert torch.equal(state[key], w), name
    # kills: an adapter that never trains (B stays at its zero initialization)
    assert any(v.abs().max() > 0 for k, v in lora.items() if "lora_B" in k)
    assert res.losses[-1] < res.losses[0]


def _forward_patched(model) -> bool:
    """Whether ``model`` (or, with LoRA, its base model) carries a ``forward`` of its own, as trl's patch sets it."""
    modules = [model, model.get_base_model()] if hasattr(model, "get_base_model") else [model]
    return any("forward" in vars(m) for m in modules)


def test_trls_forward_patch_is_on_while_training_and_removed_after_and_after_an_error(tok):
    during = []
    res = run_finetune(tiny_llama(tok, seed=0), tok, PAIRS[:4], FinetuneConfig(lora=True, batch_size=4, max_length=64),
                       on_step=lambda step, m: during.append(_forward_patched(m)))
    # the premise: trl patches the (base) model's forward for training, so a leftover would show
    assert during and all(during)
    # kills: trl's fused-LM-head forward, or its copyable replacement, left on the returned model
    assert not _forward_patched(res.model)
    model = tiny_llama(tok, seed=0)
    long = [PAIRS[0], PreferencePair("long", "x " * 30, "no", "yes", "")]
    with pytest.raises(ValueError, match="no response token within max_length"):
        finetune(model, tok, long, FinetuneConfig(batch_size=2, max_length=16))
    # kills: the patch removed on success only
    assert not _forward_patched(model)


def test_lora_on_gpt2_conv1d_is_quiet_and_trains(tok):
    # kills: fan_in_fan_out left False on GPT-2's Conv1D (peft warns; warnings are errors here)
    res = run_finetune(tiny_gpt2(tok, seed=0), tok, PAIRS,
                       FinetuneConfig(lora=True, lora_targets=("c_attn",), lr=1e-2, batch_size=4, max_length=64))
    assert res.losses[-1] < res.losses[0]


@pytest.mark.slow  # DPO training with a reference model
@pytest.mark.parametrize("lora", [False, True])
def test_dpo_raises_the_margin_against_a_frozen_reference(tok, lora):
    model = tiny_llama(tok, seed=4)
    ref = copy.deepcopy(model)
    cfg = FinetuneConfig(algorithm="dpo", lora=lora, lr=1e-2, batch_size=4, epochs=2, max_length=64, beta=0.5)
    seen = {}
    res = run_finetune(model, tok, PAIRS, cfg, on_step=lambda step, m: seen.setdefault(step, copy.deepcopy(m)))

    def margin(m, p):
        return logp(m, tok, p, "aligned") - logp(m, tok, p, "unaligned")

    assert sum(margin(res.model, p) for p in PAIRS) > sum(margin(ref, p) for p in PAIRS) + 1.0
    # The loss of step 3 recomputed by hand from the model after step 2 and the model as it started:
    # -log sigmoid(beta [(lp_w - lp0_w) - (lp_l - lp0_l)]), sequence log-probs summed over response tokens.
    # kills: a reference that trains along with the policy (every loss would be log 2), a reference
    # taken after some steps, log-probs averaged per token instead of summed, or beta ignored.
    batch = PAIRS[:4]  # steps 1, 2 consumed PAIRS[:4], PAIRS[4:]; step 3 starts the second epoch
    z = [cfg.beta * ((logp(seen[2], tok, p, "aligned") - logp(ref, tok, p, "aligned"))
                     - (logp(seen[2], tok, p, "unaligned") - logp(ref, tok, p, "unaligned"))) for p in batch]
    expected = sum(math.log1p(math.exp(-x)) for x in z) / len(z)
    # Each z is beta times two margins of two float32 evaluations (policy, reference; trainer, here), absolute
    # errors; -log sigmoid is 1-Lipschitz; the trainer's float32 log-sigmoid and mean of 4 add
    # sum_tolerance32(8, 4 loss)/4. Measured gaps: 1e-6 bounds at step 1, 1e-4 at step 3. On step 3's loss the
    # wrong ones above are 83 to 157 bounds away (a reference training along), 72 to 124 (per-token means),
    # 25 to 55 (beta ignored), 32 to 239 (a reference taken after two steps).
    n = max(n_response_tokens(tok, [p], side) for p in PAIRS for side in OTHER)
    f32 = float32_bounds(seen[2], ref, lora=lora)
    for step, want in ((0, math.log(2)), (2, expected)):
        tol = cfg.beta * 2 * f32.margin_tolerance(n, "response") + sum_tolerance32(8, 4 * max(want, math.log(2))) / 4
        assert res.losses[step] == pytest.approx(want, rel=0, abs=tol), step


def test_on_step_and_tracker_see_the_steps(tok, tmp_path):
    steps = []
    tracker = RateTracker({"aligned": [p.aligned for p in PAIRS]}, tok, tmp_path / "rates.jsonl", every=2)
    res = run_finetune(tiny_llama(tok, seed=5), tok, PAIRS[:5], FinetuneConfig(batch_size=2, epochs=2, max_length=64),
                       on_step=lambda step, m: steps.append(step), tracker=tracker)
    n = 2 * math.ceil(5 / 2)  # the last, partial batch is kept
    # kills: no call before training, an off-by-one step count, a dropped last batch
    assert steps == list(range(n + 1)) and len(res.losses) == n
    tracked = [json.loads(line)["step"] for line in (tmp_path / "rates.jsonl").read_text().splitlines()]
    assert tracked == [0, 2, 4, 6]  # kills: a tracker not attached, or one measuring every step


@pytest.mark.slow  # two fine-tunings per case
@pytest.mark.parametrize("lora", [False, True])
def test_same_seed_gives_bit_identical_weights(tok, lora):
    cfg = FinetuneConfig(lora=lora, lr=1e-2, batch_size=4, max_length=64)
    runs = []
    for draw in range(2):
        torch.manual_seed(100 + draw)  # a different global RNG state before each run
        runs.append(weights(finetune(tiny_llama(tok, seed=6), tok, PAIRS, cfg, seed=7)))
    # kills: LoRA's initialization drawn from the unseeded global RNG
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_global_rng_state_is_left_as_it_was(tok):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(batch_size=4, max_length=64), seed=123)
    # kills: the trainer's set_seed(seed) leaking into the caller's random stream
    assert torch.equal(torch.rand(3), expected)


def test_quiet_by_default(tok, capsys):
    finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(batch_size=4, max_length=64))
    out, err = capsys.readouterr()
    # kills: the trainer's per-step log dictionaries or datasets' progress bars printed
    assert out == "" and err == ""


def _saved_base(tok, tmp_path):
    tiny_llama(tok, seed=8).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    return load_model_and_tokenizer(tmp_path / "base", device="cpu")[0]


@pytest.mark.parametrize("lora", [False, True])
def test_checkpoint_loads_back_and_scores_the_same(tok, tmp_path, lora):
    model = finetune(_saved_base(tok, tmp_path), tok, PAIRS,
                     FinetuneConfig(lora=lora, lr=1e-2, batch_size=4, max_length=64))
    path = save_checkpoint(model, tok, tmp_path / "ckpt")
    assert (path / ("adapter_config.json" if lora else "config.json")).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "ckpt"]  # no temporary folder left
    loaded, loaded_tok = load_model_and_tokenizer(path, device="cpu")
    assert loaded_tok(PAIRS[0].aligned).input_ids == tok(PAIRS[0].aligned).input_ids
    for p in PAIRS[:3]:
        a, b = _token_logps(model, tok, p.prompt, p.aligned), _token_logps(loaded, tok, p.prompt, p.aligned)
        # two float32 evaluations (merged W + s B A against W x + s B (A x) with LoRA): twice the per-token
        # bound, 2.7e-4 to 3.2e-4 nats (measured gaps: 0 without LoRA, 1.2e-4 bounds with it). Kills: a LoRA
        # checkpoint scoring as its base (1060 bounds), weights rounded to bfloat16 (2.1 bounds with LoRA, 6.5
        # without)
        assert torch.allclose(a, b, rtol=0, atol=2 * float32_bounds(loaded, lora=lora).logprob_tolerance())
    if not lora:  # float32 weights serialize exactly; kills a checkpoint missing weights or saved in another dtype
        saved = loaded.state_dict()
        assert all(torch.equal(saved[k], w) for k, w in model.state_dict().items())
    with pytest.raises(ValueError, match="exists"):
        save_checkpoint(model, tok, path)  # kills: silently overwriting a finished checkpoint
    save_checkpoint(model, tok, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "ckpt"]


def test_lora_checkpoint_of_a_model_built_from_a_config_is_refused(tok, tmp_path):
    model = finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(lora=True, batch_size=4, max_length=64))
    with pytest.raises(ValueError, match="base model has no location"):
        save_checkpoint(model, tok, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown algorithm 'ppo'; known: sft, dpo"):
        FinetuneConfig(algorithm="ppo")


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", True), ("lora_r", 2.0), ("max_length", -1)])
def test_counts_must_be_integers_of_at_least_one(field, value):
    """A bool or a float is refused too (``True`` passes as 1 in Python arithmetic, ``2.0`` passes ``>= 1``)."""
    with pytest.raises(ValueError, match=f"{field} must be an integer >= 1, got {value!r}"):
        FinetuneConfig(**{field: value})


def test_missing_lora_target_names_it_and_the_model_modules(tok):
    cfg = FinetuneConfig(lora=True, lora_targets=("q_proj", "query_key_value"), max_length=64, batch_size=4)
    with pytest.raises(ValueError, match=r"'query_key_value' is not in the model .*q_proj.*v_proj") as info:
        finetune(tiny_llama(tok, seed=0), tok, PAIRS, cfg)
    assert "\n" not in str(info.value)


def test_batch_larger_than_the_data(tok):
    with pytest.raises(ValueError, match="batch_size 9 is larger than the 8 examples"):
        finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(batch_size=9, max_length=64))


def test_max_length_beyond_the_context(tok):
    long = [PreferencePair("long", "x " * 40, "no " * 20, "yes " * 20, "")] * 2
    with pytest.raises(ValueError, match="exceeds the model's context of 64 tokens"):
        finetune(tiny_llama(tok, seed=0), tok, long, FinetuneConfig(batch_size=2, max_length=128))


def test_prompt_filling_max_length(tok):
    # kills: trl silently dropping the example, so that the run trains on fewer examples than given
    long = [PAIRS[0], PreferencePair("long", "x " * 30, "no", "yes", "")]
    with pytest.raises(ValueError, match="1 of 2 examples have no response token within max_length 16"):
        finetune(tiny_llama(tok, seed=0), tok, long, FinetuneConfig(batch_size=2, max_length=16))


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 4294967296 bytes"),
])
def test_out_of_memory_suggests_what_to_change(tok, monkeypatch, error):
    import transformers

    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(transformers.Trainer, "training_step", boom)
    with pytest.raises(ValueError, match="out of memory.*smaller batch_size, a shorter max_length or LoRA"):
        finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(batch_size=4, max_length=64))


def test_other_runtime_errors_are_not_called_out_of_memory(tok, monkeypatch):
    import transformers

    def boom(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(transformers.Trainer, "training_step", boom)
    # kills: every RuntimeError reported as memory exhaustion
    with pytest.raises(RuntimeError, match="shape mismatch"):
        finetune(tiny_llama(tok, seed=0), tok, PAIRS, FinetuneConfig(batch_size=4, max_length=64))
