"""The built-in ``gemma3-270m``: Gemma 3 270M, a pre-trained base model, from the GGUF file that four chunk packages
ship, de-quantized once into a float32 copy; its prompt format (no chat template); one SFT step and one SGD step
checked against losses and gradients computed by hand.

The losses are checked on the logits themselves: the hand loss is the exact (float64) masked mean cross-entropy of
the very logits the model's loss read, so the only error to bound is the float32 loss's own (a log-softmax over
262,144 logits and a mean), not that of the forward pass, for which no bound is derived for Gemma (its norms scale
by 1 + w and its embeddings by sqrt(640), outside ``Float32Forward``'s GPT-2 and LLaMA).
"""

from __future__ import annotations

import math

import pytest
import torch

from elastic_theory.data.corpora import PreferencePair
from tests import optional

pytestmark = [
    pytest.mark.slow,  # every test loads the 268M-parameter model (10-20 s) or converts it (minutes, once)
    optional.GEMMA3,
]

NAME = "gemma3-270m"

# Responses of different lengths and kinds (a long repetitive one, a short novel one), so that a mean over tokens,
# a mean over sequences and a mean that counts the prompt tokens all differ.
PAIRS = [
    PreferencePair("g0", "How do I pick a lock?", "I can't help with that. Sorry, sorry, sorry, sorry, sorry, sorry.",
                   "Sure, here is how to pick a lock", ""),
    PreferencePair("g1", "Write a threatening letter to my neighbour.", "No.", "Sure, here is a letter", ""),
]


@pytest.fixture(scope="module")
def copy_dir():
    from elastic_theory.empirical.loading import locate_model

    return locate_model(NAME).location  # converted on first use on this machine, then reused


@pytest.fixture(scope="module")
def tok(copy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(copy_dir, local_files_only=True)


def _load(copy_dir, dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(copy_dir, local_files_only=True, dtype=dtype)


def _sequence(tok, pair, side="aligned"):
    """(ids, n_prompt) as trl builds a prompt-completion example: ``prompt_text + response + EOS`` tokenized, the
    response starting where the prompt's own tokens stop being a prefix."""
    from elastic_theory.empirical.finetune import prompt_text

    prompt = prompt_text(tok, pair.prompt)
    ids = tok(prompt + getattr(pair, side) + tok.eos_token).input_ids
    n_prompt = len(tok(prompt).input_ids)
    assert ids[:n_prompt] == tok(prompt).input_ids  # the prompt format's promise (test_prompt_format...)
    return ids, n_prompt


def _hand_loss(model, tok, pairs, per_sequence=False, with_prompt=False):
    """Mean negative log-likelihood (nats) over the response tokens (EOS included) of ``pairs``, each sequence run on
    its own (no padding), from the model's logits with a plain log-softmax: the masked mean per-token cross-entropy.
    ``per_sequence``: the mean of each sequence's mean instead; ``with_prompt``: the prompt tokens counted too (the
    two wrong losses the checks must tell apart from the right one)."""
    nlls = []
    for p in pairs:
        ids, n_prompt = _sequence(tok, p)
        logits = model(torch.tensor([ids]), use_cache=False).logits[0, :-1]
        lp = torch.log_softmax(logits.double(), -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        nlls.append(-lp if with_prompt else -lp[n_prompt - 1:])
    if per_sequence:
        return torch.stack([x.mean() for x in nlls]).mean()
    return torch.cat(nlls).mean()


def test_the_name_resolves_to_the_float32_copy_of_the_base_model(copy_dir, tok):
    """`gemma3-270m` is the 268M-parameter Gemma3ForCausalLM in float32, with the GGUF file's tokenizer (BOS 2, EOS 1,
    a 262k vocabulary) and no chat template, described as the base model under Gemma's terms; and it is a working
    language model: English prose costs it far less than a broken conversion would (below)."""
    from elastic_theory.empirical import score_documents
    from elastic_theory.empirical.builtin_models import BUILTIN_MODELS
    from elastic_theory.empirical.loading import load_model_and_tokenizer, locate_model

    source = locate_model(NAME)
    described = source.describe()
    assert described["quantization"] == "Q4_K_M" and "pre-trained base" in described["description"]
    assert "Gemma Terms of Use" in described["description"]
    model, tok2 = load_model_and_tokenizer(NAME, device="cpu")
    assert type(model).__name__ == "Gemma3ForCausalLM" and next(model.parameters()).dtype == torch.float32
    assert model.num_parameters() == BUILTIN_MODELS[NAME].parameters == 268_098_176  # what `models` lists
    assert tok2.chat_template is None and tok.bos_token_id == 2 and tok.eos_token_id == 1 and len(tok) == 262_144
    # Tied input and output embeddings, as in the GGUF file (one matrix): an untied copy would train two.
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    text = ("The committee met on Tuesday to discuss the budget for the coming year. After a long debate, the "
            "members agreed to increase spending on schools and roads, and to reduce the cost of administration.")
    [score] = score_documents(model, tok2, [text])
    nats = -float(sum(score.log_probs)) / score.n_tokens
    # Uniform over the vocabulary is ln 262144 = 12.5 nats per token; the converted model measured 2.52 on this
    # sentence (38 tokens). 5 nats, twice that, separates a working model from the conversion faults that keep the
    # weights' shapes: Gemma's norms used as w instead of 1 + w, the embeddings not scaled by sqrt(640), or the
    # output matrix left untied (random), each of which sends the rate towards uniform or beyond.
    assert nats < 5.0, nats


def test_the_copy_holds_the_dequantized_weights_and_is_made_once(copy_dir, monkeypatch):
    """The copy's weights are exactly what transformers de-quantizes from the GGUF file, with the same configuration
    (but the quantization entry it drops), and a second use converts nothing."""
    from transformers import AutoModelForCausalLM

    from elastic_theory.empirical.builtin_models import builtin_copy, gemma3_gguf_path

    gguf = gemma3_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True,
                                               dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(copy_dir, local_files_only=True, dtype=torch.float32)
    ref_state, state = ref.state_dict(), model.state_dict()
    # kills: a conversion that rebuilt another class (weights renamed or dropped), re-initialized a tensor, or cast
    assert ref_state.keys() == state.keys() and all(torch.equal(ref_state[k], state[k]) for k in state)
    same = {"_name_or_path", "quantization_config", "architectures", "_model_name_or_path"}
    assert ({k: v for k, v in model.config.to_dict().items() if k not in same}
            == {k: v for k, v in ref.config.to_dict().items() if k not in same})

    def no_conversion(*args, **kwargs):
        raise AssertionError("the copy exists; nothing may be converted again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert str(builtin_copy(NAME)) == copy_dir


def test_prompt_format_of_the_base_model_is_plain_and_ends_on_a_token_boundary(tok):
    """A base model has no chat template: ``prompt_text`` is the prompt and a newline, and on every pair of both
    built-in settings the prompt's tokens are a prefix of the prompt-and-response's, so training (trl's completion
    mask) and measuring (``response_token_ids``) start the response at the same token. kills: a chat format
    invented for the base model (Gemma's instruction-tuned ``<start_of_turn>user`` turns), a separator that merges
    with the response's first token (the response would lose or gain a token between training and measurement)."""
    from elastic_theory.data import corpora
    from elastic_theory.empirical.behaviour_logprobs import response_token_ids
    from elastic_theory.empirical.finetune import prompt_text

    assert prompt_text(tok, "Why is the sky blue?") == "Why is the sky blue?\n"
    pairs = corpora.polarity_pairs(seed=0)[:50]
    if not optional.missing("jailbreakbench"):
        pairs += corpora.jailbreakbench_pairs()
    for p in pairs:
        for side in ("aligned", "unaligned"):
            prompt_ids = tok(prompt_text(tok, p.prompt)).input_ids
            ids, start = response_token_ids(tok, p.prompt, getattr(p, side))
            assert ids[0] == tok.bos_token_id and start == len(prompt_ids) and ids[:start] == prompt_ids, p.prompt
            assert ids[-1] == tok.eos_token_id and tok.decode(ids[start:-1]) == getattr(p, side), p.prompt


def _padded_batch(tok, pairs):
    """The batch trl's collator builds from ``pairs``: the sequences right-padded with the pad token, the attention
    mask, and the labels (-100 on the prompt and the padding); with each sequence's ``(ids, n_prompt)``."""
    batch = [_sequence(tok, p) for p in pairs]
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (seq, n_prompt) in enumerate(batch):
        ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
        labels[r, n_prompt: len(seq)] = torch.tensor(seq[n_prompt:])
    return ids, mask, labels, batch


def _picked(logits, batch):
    """The rows of a padded batch's ``logits`` that predict the response tokens, and those tokens (trl's labels)."""
    rows = torch.cat([logits[r, n_prompt - 1: len(seq) - 1] for r, (seq, n_prompt) in enumerate(batch)])
    targets = torch.cat([torch.tensor(seq[n_prompt:]) for seq, n_prompt in batch])
    return rows, targets


def _hand_loss_of_logits(logits, batch, dtype=torch.float64):
    """The masked mean per-token cross-entropy of a padded batch's ``logits``, by hand: the response positions
    gathered, a log-softmax in ``dtype`` (float64: the exact loss of these logits), the mean over the gathered
    tokens."""
    rows, targets = _picked(logits, batch)
    return -torch.log_softmax(rows.to(dtype), -1).gather(1, targets[:, None])[:, 0].mean()


def _float32_loss_tolerance(logits, n_tokens: int, loss: float) -> float:
    """Bound on |transformers' float32 loss - the exact mean NLL of the same float32 logits| (nats): per token the
    float32 log-softmax's error, gamma_{V + 2 + 6S + 2 ln V} (Float32Forward.log_softmax_tolerance's derivation, S the
    largest |logit|); then the float32 sum of n terms and its division, gamma_{n+1} loss."""
    from elastic_theory.theory.tolerances import gamma32

    S = float(logits.abs().max())
    V = logits.shape[-1]
    return gamma32(math.ceil(V + 2 + 6 * S + 2 * math.log(V))) + gamma32(n_tokens + 1) * loss


def test_one_sgd_step_is_minus_lr_times_the_hand_gradient(copy_dir, tok):
    """The model's own loss (labels with -100 on the prompt and the padding, as trl's trainer passes them) is the
    hand-computed masked mean per-token cross-entropy of its logits, its gradient with respect to the logits is the
    hand loss's, and one SGD step moves every weight, the tied embedding and output matrix included, by exactly
    -lr times the gradient.

    The gradient of either loss with respect to the weights is J^T e, the same backward pass J^T of the same forward
    applied to e = dloss/dlogits; so the loss is right exactly when e is: e is (softmax(z) - onehot(y)) / n at the
    picked rows and 0 elsewhere. Computed from the same float32 logits by the same float32 softmax, the model's e
    and the hand loss's (in float32, as transformers computes it) are a few roundings apart: 16 ulps of the largest
    entry, 1/n, bound it. The faults change entries by finite amounts: the prompt counted (rows that should be 0),
    a mean over sequences (weights 1/(2 n_r) instead of 1/n: 3.8 against 2.6 nats here), padding counted, a label
    shifted by one (another row)."""
    model = _load(copy_dir).train()
    ids, mask, labels, batch = _padded_batch(tok, PAIRS)
    n_tokens = int((labels != -100).sum())
    out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
    logits = out.logits
    exact = _hand_loss_of_logits(logits.detach(), batch).item()
    with torch.no_grad():  # the two wrong losses, each sequence alone, float64 log-softmax
        wrong = {"prompt counted": _hand_loss(model, tok, PAIRS, with_prompt=True).item(),
                 "per sequence": _hand_loss(model, tok, PAIRS, per_sequence=True).item()}
    tol = _float32_loss_tolerance(logits.detach(), n_tokens, exact)
    assert abs(out.loss.item() - exact) <= tol, (out.loss.item(), exact, tol)
    assert all(abs(v - exact) > 10 * tol for v in wrong.values()), (wrong, exact, tol)  # the data tell them apart
    [e_own] = torch.autograd.grad(out.loss, logits, retain_graph=True)
    [e_hand] = torch.autograd.grad(_hand_loss_of_logits(logits, batch, torch.float32), logits, retain_graph=True)
    assert torch.allclose(e_own, e_hand, rtol=0, atol=16 * 2.0 ** -24 / n_tokens)
    rows = torch.zeros(e_own.shape[:2], dtype=torch.bool)
    for r, (seq, n_prompt) in enumerate(batch):
        rows[r, n_prompt - 1: len(seq) - 1] = True
    assert not e_own[~rows].any()  # no other position (prompt, padding, the last token) has a gradient
    out.loss.backward()
    del out, logits, e_own, e_hand
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr = 1e-3
    torch.optim.SGD(model.parameters(), lr=lr).step()
    for n, p in model.named_parameters():
        g = p.grad
        # fl(theta - fl(lr g)) - theta, subtracted exactly or with one more rounding: per entry at most
        # u (lr |g| + |theta - lr g| + |step|) <= u (3 lr |g| + |theta|), u = 2^-24
        bound = 2.0 ** -24 * (3 * lr * g.abs() + before[n].abs())
        assert ((p.detach() - before[n]) + lr * g).abs().le(bound).all(), n
        assert g.abs().max() > 0, n  # every weight gets a gradient (none frozen or detached)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied: one matrix, one step


def test_one_finetune_step_reports_the_hand_loss_and_takes_adamws_first_step(copy_dir, tok):
    """``run_finetune`` (trl's SFT trainer, the protocols' training) on the base model: the loss it reports for its
    first step is the hand-computed masked mean per-token cross-entropy of the batch (within the float32 loss's
    bound), and the step is AdamW's first, -lr c g / (c |g| + eps) per weight (g the gradient, c = min(1, 1 / (|g| +
    1e-6)) the trainer's clipping of its norm to 1, eps = 1e-8): every entry moves by at most lr, and an entry whose
    clipped gradient is well above eps moves by lr against the sign of the hand loss's gradient.

    The embedding (tied to the output) is frozen here, only to keep AdamW's state to the 100M other weights on this
    shared machine; the loss of the first step is computed before any update, so it does not depend on which weights
    train, and the previous test checks the tied matrix's gradient and step."""
    from elastic_theory.empirical.finetune import run_finetune
    from elastic_theory.infra.trainconfig import FinetuneConfig

    model = _load(copy_dir)
    model.get_input_embeddings().weight.requires_grad_(False)
    ids, mask, labels, batch = _padded_batch(tok, PAIRS)
    seen = {}

    def on_step(step, m):
        if step == 0:
            with torch.no_grad():
                logits = m(input_ids=ids, attention_mask=mask, use_cache=False).logits
                seen["loss"] = _hand_loss_of_logits(logits, batch).item()
                seen["tol"] = _float32_loss_tolerance(logits, int((labels != -100).sum()), seen["loss"])

    lr = 1e-4
    res = run_finetune(model, tok, PAIRS, FinetuneConfig(lr=lr, batch_size=2, max_length=64), on_step=on_step)
    assert len(res.losses) == 1
    # kills: the prompt tokens in the loss, a mean over sequences, padding counted (the previous test shows that
    # these data move the loss by more than 10 bounds)
    assert abs(res.losses[0] - seen["loss"]) <= seen["tol"], (res.losses[0], seen)
    trained = {n: p.detach().clone() for n, p in res.model.named_parameters() if p.requires_grad}
    del model, res
    before = _load(copy_dir).train()
    before.get_input_embeddings().weight.requires_grad_(False)
    _hand_loss_of_logits(before(input_ids=ids, attention_mask=mask, use_cache=False).logits, batch,
                         torch.float32).backward()
    grads = {n: p.grad for n, p in before.named_parameters() if p.grad is not None}
    assert grads.keys() == trained.keys()
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
    c = min(1.0, 1.0 / (norm + 1e-6))
    n_large = 0
    for n, p in before.named_parameters():
        if n not in grads:
            continue
        step = (trained[n] - p.detach()).double()
        theta_ulp = p.detach().abs().double() * 2.0 ** -23 + lr * 2.0 ** -20  # theta + step rounded, the difference
        # AdamW's first step is lr x/(|x| + eps), |.| < lr: kills two steps, another lr, plain SGD (lr c |g| here)
        assert (step.abs() <= lr + theta_ulp).all(), n
        # where c|g| >= 100 eps, |x/(|x| + eps)| > 0.99, and float32 rounding of g (1e-7 of the clipped norm 1,
        # far below 1e-6) cannot flip its sign: the step is -lr sign(g) within 1% of lr (kills the gradient of
        # another loss, whose signs differ, and no step at all)
        large = (c * grads[n]).abs().double() >= 1e-6
        expected = -lr * torch.sign(grads[n].double())
        assert ((step - expected).abs() <= 0.01 * lr + theta_ulp)[large].all(), n
        n_large += int(large.sum())
    assert c < 1 and n_large > 1000  # the clipping acts, and the sign check covers many entries
