"""``elastic-theory compare`` on tiny local models: paired changes, ratio, cache, outputs and bad input.

The checkpoint is the base with its final layer norm's weight and bias scaled by 1.3, i.e. every
logit multiplied by 1.3 (a temperature of 1/1.3). On an untrained model that raises almost every
document's code length by a little, so the change is small against the spread of the documents'
rates: the paired interval resolves it, while the two models' own intervals overlap.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from elastic_theory import empirical
from elastic_theory.cli import app
from elastic_theory.cli.compare_cmd import parse_k
from elastic_theory.stats.comparison import compare_rates
from elastic_theory.empirical import byte_bpe_tokenizer, read_documents, tiny_gpt2
from elastic_theory.empirical.compare import ScoreCache, ScoringSettings, score_dataset, score_models

CONTEXT = 64
LOGIT_SCALE = 1.3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pydoc_data.topics import topics  # real English prose shipped with Python

    keys = sorted(topics)
    texts = [topics[k][:200] for k in keys[:40]]
    root = tmp_path_factory.mktemp("compare")
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    base = tiny_gpt2(tok, seed=0, n_positions=CONTEXT)
    ckpt = tiny_gpt2(tok, seed=0, n_positions=CONTEXT)
    with torch.no_grad():
        ckpt.transformer.ln_f.weight.mul_(LOGIT_SCALE)
        ckpt.transformer.ln_f.bias.mul_(LOGIT_SCALE)
    other_tok = byte_bpe_tokenizer(texts, vocab_size=280)
    other = tiny_gpt2(other_tok, seed=1, n_positions=CONTEXT)
    for name, (model, t) in {"base": (base, tok), "ckpt": (ckpt, tok), "other": (other, other_tok)}.items():
        model.save_pretrained(root / name)
        t.save_pretrained(root / name)
    (root / "align.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:20]))
    (root / "pre.txt").write_text("\n".join(" ".join(t.split()) for t in texts[20:]) + "\n")
    return root, {"base": (base, tok), "ckpt": (ckpt, tok), "other": (other, other_tok)}


def _run(root, *args, cache=True):
    cache_args = ["--cache-dir", str(root / "cache")] if cache else ["--no-cache"]
    # wide enough that no header wraps, whatever COLUMNS the test runner has
    return CliRunner().invoke(app, ["compare", *map(str, args), *cache_args, "--no-progress"], env={"COLUMNS": "200"})


def _data(root):
    return ["--data", f"align={root / 'align.jsonl'}", "--data", f"pre={root / 'pre.txt'}"]


@pytest.mark.slow  # trains two tiny models and bootstraps their scores
def test_paired_interval_resolves_the_shift_that_the_models_own_intervals_do_not(setup, tmp_path):
    root, models = setup
    out, per_doc = tmp_path / "out.json", tmp_path / "docs.jsonl"
    result = _run(root, "--base", root / "base", "--checkpoint", f"hot={root / 'ckpt'}", *_data(root), "--seed", 2,
                  "--json", out, "--per-document", per_doc, "--plots", tmp_path / "plots", cache=False)
    assert result.exit_code == 0, result.output
    assert "paired 95% CI" in result.output and "hot" in result.output
    report = json.loads(out.read_text())
    # the library on the same models and files gives the same numbers, drawn in the same order
    settings = ScoringSettings()
    docs = {d: read_documents(p) for d, p in (("align", root / "align.jsonl"), ("pre", root / "pre.txt"))}
    scores = {m: {d: score_dataset(*models[m], docs[d], settings) for d in docs} for m in ("base", "ckpt")}
    expected = compare_rates(scores["base"], {"hot": scores["ckpt"]}, np.random.default_rng(2))
    for d in docs:
        entry = report["checkpoints"]["hot"]["datasets"][d]
        assert set(entry) >= {"bits_per_token", "bits_per_byte", "delta_bits_per_byte", "delta_bits_per_byte_ci95"}
        assert entry == json.loads(json.dumps(expected.changes["hot"][d].to_dict()))
        lo, hi = entry["delta_bits_per_byte_ci95"]
        assert 0 < lo <= entry["delta_bits_per_byte"] <= hi  # resolved: the whole paired interval is above 0
        (bl, bh), (cl, ch) = report["base"]["datasets"][d]["bits_per_byte_ci95"], entry["bits_per_byte_ci95"]
        assert cl < bh and bl < ch  # ... while the two models' own intervals overlap
        assert hi - lo < 0.05 * (bh - bl)  # pairing removes the documents' spread
    lines = [json.loads(line) for line in per_doc.read_text().splitlines()]
    assert len(lines) == 40 and set(lines[0]["bits"]) == {"base", "hot"}
    align = [row for row in lines if row["dataset"] == "align"]
    assert sum(r["bits"]["hot"] for r in align) / sum(r["n_bytes"] for r in align) == pytest.approx(
        report["checkpoints"]["hot"]["datasets"]["align"]["bits_per_byte"], rel=1e-12)
    assert (tmp_path / "plots" / "compare_rate_changes.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # scores three tiny models on three datasets through the command
def test_ratio_with_its_interval_and_k_from_sizes(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "out.json"
    result = _run(root, "--base", root / "base", "--checkpoint", f"hot={root / 'ckpt'}", *_data(root),
                  "--ratio", "align/pre", "--k", "align=100,pre=5000", "--json", out, "--plots", tmp_path / "p", cache=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    ratio = report["checkpoints"]["hot"]["ratio"]
    changes = report["checkpoints"]["hot"]["datasets"]
    # the theory's convention, R = Delta(align) / -Delta(pre); the hotter logits raise both rates, so the two changes
    # share a sign, R is negative, and compare says that the theorem's R is not defined
    assert ratio["value"] == pytest.approx(changes["align"]["delta_bits_per_byte"] / -changes["pre"]["delta_bits_per_byte"], rel=1e-12)
    assert changes["align"]["delta_bits_per_byte"] > 0 and changes["pre"]["delta_bits_per_byte"] > 0
    assert ratio["same_sign"] and ratio["value"] < 0
    assert any("same sign, so the theorem's R" in note for note in report["notes"])
    assert "align in the alignment role, pre in the pre-training role" in " ".join(result.output.split())
    assert ratio["ci95"] is not None and ratio["ci95"][0] < ratio["value"] < ratio["ci95"][1]
    assert ratio["k"] == 50.0
    base = report["base"]["datasets"]
    tokens_per_doc = {d: base[d]["n_tokens"] / base[d]["n_documents"] for d in base}
    assert ratio["k_per_token"] == pytest.approx(50.0 * tokens_per_doc["pre"] / tokens_per_doc["align"], rel=1e-12)
    assert (tmp_path / "p" / "compare_ratio.png").is_file() and "Fieller" in result.output


def _compare_without_files(tmp_path, k: str):
    """compare with --k ``k`` where no model or dataset exists: refused at the first check that fails."""
    return CliRunner().invoke(app, ["compare", "--base", str(tmp_path / "none"), "--checkpoint", f"a={tmp_path / 'none'}",
                                    "--data", f"align={tmp_path / 'no.jsonl'}", "--data", f"pre={tmp_path / 'no.txt'}",
                                    "--ratio", "align/pre", "--k", k, "--no-cache"])


def test_k_takes_an_exact_fraction_as_ratio_does(tmp_path):
    """compare --k reads its numbers with ratio's parser: 4/5 is 0.8 (the command goes on to read the datasets)."""
    assert parse_k("4/5", ("align", "pre")) == 0.8 and parse_k(" 3 ", ("align", "pre")) == 3.0
    assert parse_k("align=1/2,pre=3", ("align", "pre")) == {"align": 0.5, "pre": 3.0}
    result = _compare_without_files(tmp_path, "4/5")
    assert result.exit_code == 2 and result.stderr.startswith(f"error: --data align={tmp_path / 'no.jsonl'}:")


@pytest.mark.parametrize("k, message", [
    ("abc", "--k 'abc': expected a number > 0, or sizes align=N,pre=N"),
    ("4/0", "--k '4/0': expected a number > 0, or sizes align=N,pre=N"),
    ("-4/5", "--k '-4/5': expected a number > 0, or sizes align=N,pre=N"),
    ("0", "--k '0': expected a number > 0, or sizes align=N,pre=N"),
    ("inf", "--k 'inf': expected a number > 0, or sizes align=N,pre=N"),
    ("1" + "0" * 400 + "/3", f"--k '1{'0' * 400}/3': expected a number > 0, or sizes align=N,pre=N"),
    ("align=1/0,pre=3", "--k 'align=1/0,pre=3': expected the training-set sizes align=N,pre=N (documents, > 0)"),
])
def test_a_bad_k_is_one_line_and_exit_2_before_any_file_is_read(tmp_path, k, message):
    """The messages of compare's --k are those it gave before it read fractions (no file or model is opened first)."""
    result = _compare_without_files(tmp_path, k)
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {message}"]


@pytest.mark.parametrize("other_setting", [["--context", 32], ["--threads", 2]])
def test_second_run_takes_every_score_from_the_cache(setup, tmp_path, monkeypatch, other_setting):
    """The same command scores nothing again; another setting, the thread count included (on the CPU it can change
    the last bits of a score), is another key and scores again."""
    root, _ = setup
    args = ["--base", root / "base", "--checkpoint", f"hot={root / 'ckpt'}", *_data(root)]
    first = tmp_path / "first.json"
    assert _run(root, *args, "--json", first).exit_code == 0

    def no_loading(*a, **k):
        raise AssertionError("a cached model was loaded again")

    monkeypatch.setattr(empirical, "load_model_and_tokenizer", no_loading)
    second = tmp_path / "second.json"
    result = _run(root, *args, "--json", second)
    assert result.exit_code == 0, result.output
    assert json.loads(first.read_text())["checkpoints"] == json.loads(second.read_text())["checkpoints"]
    # another setting is another key: now the model must be loaded, and the guard above fires
    threads = torch.get_num_threads()
    try:
        result = _run(root, *args, *other_setting)
    finally:
        torch.set_num_threads(threads)  # compare sets torch's thread count for the whole process
    assert result.exit_code != 0 and "a cached model was loaded again" in str(result.exception)


def test_score_models_loads_each_model_once_and_only_for_missing_scores(setup, tmp_path):
    root, models = setup
    docs = {"align": read_documents(root / "align.jsonl"), "pre": read_documents(root / "pre.txt")}
    loads = []

    def load(path):
        loads.append(path)
        return models["base" if path.endswith("base") else "ckpt"]

    cache = ScoreCache(tmp_path)
    paths = {"base": str(root / "base"), "again": str(root / "base"), "hot": str(root / "ckpt")}
    first = score_models(paths, {"align": docs["align"]}, ScoringSettings(), cache, load=load)
    assert loads == [paths["base"], paths["hot"]]  # the same files under two labels: loaded and scored once
    np.testing.assert_array_equal(first["again"]["align"].bits, first["base"]["align"].bits)
    score_models(paths, docs, ScoringSettings(), cache, load=load)
    assert loads == [paths["base"], paths["hot"]] * 2  # only 'pre' was missing: one load per model


def test_other_tokenizer_compares_bits_per_byte_and_refuses_token_changes(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "out.json"
    args = ["--base", root / "base", "--checkpoint", f"other={root / 'other'}", *_data(root)]
    result = _run(root, *args, "--json", out, cache=False)
    assert result.exit_code == 0, result.output
    assert "bits per byte are comparable across tokenizers" in result.output
    entry = json.loads(out.read_text())["checkpoints"]["other"]["datasets"]["align"]
    assert entry["delta_bits_per_token"] is None and entry["delta_bits_per_byte_ci95"] is not None
    out.unlink()
    result = _run(root, *args, "--ratio", "align/pre", "--unit", "token", "--json", out, cache=False)
    assert result.exit_code == 2 and "not comparable; bits per byte are: use --unit byte" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "x={root}/missing"], "--checkpoint x: model '{root}/missing' is neither a local directory"),
        (["--checkpoint", "no-equals"], "expected NAME=MODEL"),
        (["--checkpoint", "base={root}/ckpt"], "the name 'base' is reserved"),
        (["--checkpoint", "a={root}/ckpt", "--ratio", "align/nope"], "no dataset named 'nope'"),
        (["--checkpoint", "a={root}/ckpt", "--ratio", "align"], "expected NUM/DEN"),
        (["--checkpoint", "a={root}/ckpt", "--k", "10"], "--k needs --ratio"),
        (["--checkpoint", "a={root}/ckpt", "--ratio", "align/pre", "--k", "-1"], "expected a number > 0"),
        (["--checkpoint", "a={root}/ckpt", "--ratio", "align/pre", "--k", "align=3"], "give the sizes of both"),
        (["--checkpoint", "a={root}/ckpt", "--json", "{root}"], "is a folder; give a file path"),
        (["--checkpoint", "a={root}/ckpt", "--plots", "{root}/pre.txt"], "is a file; give a folder"),
        (["--checkpoint", "a={root}/ckpt", "--per-document", "{root}"], "--per-document {root}: is a folder"),
        (["--checkpoint", "a={root}/ckpt", "--stride", "0"], "--stride must be an integer in 1..context"),
        (["--checkpoint", "a={root}/ckpt", "--cache-dir", "{root}/pre.txt"], "--cache-dir {root}/pre.txt: is a file"),
        (["--checkpoint", "a={root}/ckpt", "--context", "8", "--stride", "9"], "--stride must be an integer in 1..context (8)"),
        (["--checkpoint", "a={root}/ckpt", "--batch-size", "0"], "--batch-size must be an integer >= 1"),
        (["--checkpoint", "a={root}/ckpt", "--seed", "-1"], "--seed must be an integer >= 0"),
        (["--checkpoint", "a={root}/ckpt", "--data", "x={root}/no.jsonl"], "--data x={root}/no.jsonl: {root}/no.jsonl: no such"),
        (["--checkpoint", "a={root}/ckpt", "--unit", "nat"], "--unit 'nat'"),
        (["--checkpoint", "a={root}/ckpt", "--unit", "token"], "--unit token sets the unit of the ratio"),
    ],
)
def test_bad_input_exits_2_before_scoring(setup, args, message, monkeypatch):
    root, _ = setup

    def no_loading(*a, **k):
        raise AssertionError("bad input must be refused before any model is loaded")

    monkeypatch.setattr(empirical, "load_model_and_tokenizer", no_loading)
    args = [a.format(root=root) for a in args]
    result = _run(root, "--base", root / "base", *_data(root), *args, cache=False)
    assert result.exit_code == 2, result.output
    assert message.format(root=root) in result.output


def test_json_to_stdout_is_the_result_alone_with_its_provenance(setup):
    """``--json -``: stdout holds the JSON only (the tables go to stderr), with the versions and command line."""
    root, _ = setup
    result = _run(root, "--base", root / "base", "--checkpoint", f"a={root / 'ckpt'}", *_data(root), "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["checkpoints"]) == {"a"} and "paired 95% CI" in result.stderr
    assert set(report["provenance"]) == {"versions", "argv", "platform", "created"}
    assert report["config"]["threads"] == 1  # --threads' default, recorded with the settings


def test_interrupt_keeps_finished_scores_and_writes_no_result(setup, tmp_path, monkeypatch):
    root, _ = setup
    real = empirical.load_model_and_tokenizer

    def interrupt_on_checkpoint(name, **kwargs):
        if str(name).endswith("ckpt"):
            raise KeyboardInterrupt
        return real(name, **kwargs)

    monkeypatch.setattr(empirical, "load_model_and_tokenizer", interrupt_on_checkpoint)
    out = tmp_path / "out.json"
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ["compare", "--base", str(root / "base"), "--checkpoint", f"hot={root / 'ckpt'}",
                                      *_data(root), "--json", str(out), "--cache-dir", str(cache), "--no-progress"])
    assert result.exit_code == 130 and "interrupted after 2 of 4 scores" in result.output
    assert not out.exists() and len(list((cache / "scores").glob("*.npz"))) == 2


def test_measure_with_two_models_points_to_compare(setup):
    root, _ = setup
    result = CliRunner().invoke(app, ["measure", "--model", str(root / "base"), "--model", str(root / "ckpt"),
                                      "--data", f"a={root / 'pre.txt'}", "--no-progress"])
    assert result.exit_code == 2 and "elastic-theory compare --base MODEL --checkpoint NAME=MODEL" in result.output


def test_fingerprint_changes_with_any_model_file_and_covers_an_adapters_base(setup, tmp_path):
    import shutil

    from elastic_theory.empirical.compare import model_fingerprint

    root, _ = setup
    copy = tmp_path / "copy"
    shutil.copytree(root / "base", copy)
    assert model_fingerprint(copy) == model_fingerprint(root / "base")  # contents count, not the path
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config | {"n_positions": 32}))
    assert model_fingerprint(copy) != model_fingerprint(root / "base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(copy)}))
    before = model_fingerprint(adapter)
    (copy / "config.json").write_text(json.dumps(config))  # the base changes, the adapter folder does not
    assert model_fingerprint(adapter) != before


def test_one_comparison_reads_each_model_file_once(setup, tmp_path, monkeypatch):
    """A base named under two labels and again under an adapter: with the digests shared, every base file is hashed
    once (without sharing: three times), and the fingerprints equal the unshared ones."""
    import elastic_theory.empirical.compare as compare

    root, _ = setup
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(root / "base")}))
    alone = [compare.model_fingerprint(p) for p in (root / "base", root / "base", adapter)]
    reads = []
    real = compare._file_sha256
    monkeypatch.setattr(compare, "_file_sha256", lambda f: reads.append(f.resolve()) or real(f))
    digests = {}
    shared = [compare.model_fingerprint(p, digests) for p in (root / "base", root / "base", adapter)]
    assert shared == alone
    assert len(reads) == len(set(reads)) == len(list((root / "base").iterdir())) + 1


def _synthetic_report(n: int, pre_change: float, seed: int = 0):
    """build_report on synthetic scores: an alignment set whose rate rises by 0.25 bits per byte and a proxy whose
    rate changes by ``pre_change`` (noise sd 0.05 per byte), n documents each; no model is loaded."""
    from elastic_theory.cli.compare_cmd import build_report
    from elastic_theory.stats.comparison import DatasetScores

    rng = np.random.default_rng(seed)
    scores = {"base": {}, "c": {}}
    for d, change in (("align", 0.25), ("pre", pre_change)):
        n_bytes = rng.integers(100, 2000, n)
        bits = n_bytes * rng.uniform(1.0, 3.0, n)
        scores["base"][d] = DatasetScores(bits, n_bytes // 3 + 1, n_bytes, "t")
        scores["c"][d] = DatasetScores(bits + n_bytes * (change + 0.05 * rng.standard_normal(n)), n_bytes // 3 + 1,
                                       n_bytes, "t")
    comparison = compare_rates(scores["base"], {"c": scores["c"]}, rng, n_resamples=50, ratio=("align", "pre"))
    return build_report({"base": "b", "c": "c"}, {"align": "a.jsonl", "pre": "p.txt"}, scores, comparison,
                        {"k": 1.0, "k_per_token": None, "sizes": None}, config={})


def test_two_rays_are_printed_and_explained(capsys, monkeypatch):
    """A proxy whose change is not resolved from 0: Fieller's set is two rays; the table prints them, the JSON keeps
    them (``rays``) and a note says in words what is excluded. Kills printing 'unbounded' (the old output), dropping
    the rays from the JSON, and a note for the whole line where the set is two rays."""
    from elastic_theory.cli.compare_cmd import print_tables

    report = _synthetic_report(40, 0.0)
    ratio = report["checkpoints"]["c"]["ratio"]
    assert ratio["ci95"] is None and ratio["rays"] is not None
    a, b = ratio["rays"]
    assert ratio["value"] <= a or ratio["value"] >= b  # the estimate lies in one of the rays ...
    assert a < 0 < b  # ... and the excluded part holds 0 (the numerator is resolved from 0)
    notes = [n for n in report["notes"] if "not resolved from 0" in n]
    assert len(notes) == 1 and f"exclude only {a:.4g} < R < {b:.4g}" in notes[0]
    monkeypatch.setenv("COLUMNS", "250")
    print_tables(report)
    assert f"R <= {a:.3g} or R >= {b:.3g}" in capsys.readouterr().out


def test_notes_for_few_documents_and_changes_of_one_sign():
    """Fewer than MIN_DOCUMENTS documents: a note; 10: none. Both rates rising: R < 0 and a note that the theorem's R
    is not defined; opposite signs: no such note. Kills a threshold off by one and a same-sign note keyed on R's
    own sign convention being the other one."""
    few = _synthetic_report(9, -0.05)
    assert sum("coverage was checked by simulation from 10 documents" in n for n in few["notes"]) == 2
    ok = _synthetic_report(10, -0.05, seed=1)
    assert not any("coverage was checked" in n for n in ok["notes"])
    assert not ok["checkpoints"]["c"]["ratio"]["same_sign"] and not any("same sign" in n for n in ok["notes"])
    same = _synthetic_report(60, 0.1, seed=2)
    assert same["checkpoints"]["c"]["ratio"]["same_sign"] and same["checkpoints"]["c"]["ratio"]["value"] < 0
    assert any("have the same sign, so the theorem's R" in n for n in same["notes"])


def test_a_dataset_holding_a_finetune_runs_training_examples_is_refused_before_scoring(setup, tmp_path, monkeypatch):
    """``finetune`` records its training examples in OUT/result.json; comparing OUT/final on a dataset that holds
    two of them is one line naming the dataset, the count and the record, before any model loads. Kills a check
    that reads only the checkpoint folder (the record sits beside it) and one that counts training examples
    instead of documents."""
    import shutil

    from elastic_theory.data.overlap import TrainingText

    root, _ = setup
    monkeypatch.setattr(empirical, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("loaded a model"))
    run = tmp_path / "run"
    shutil.copytree(root / "ckpt", run / "final")
    docs = read_documents(root / "align.jsonl")
    trained = [TrainingText(f"t{i}", (docs[i].text[:60],)) for i in (3, 7)] + [TrainingText("x", ("not in any",))]
    (run / "result.json").write_text(json.dumps({"data": {"train_texts": [t.to_dict() for t in trained]}}))
    result = _run(root, "--base", root / "base", "--checkpoint", f"ft={run / 'final'}", *_data(root), cache=False)
    assert result.exit_code == 2, result.output
    assert (f"--data align: 2 of its 20 documents hold text of checkpoint 'ft''s training examples "
            f"({run / 'result.json'})") in " ".join(result.output.split())
    from elastic_theory.cli.inputs import refuse_trained_documents

    (run / "result.json").write_text(json.dumps({"data": {"train_texts": [trained[2].to_dict()]}}))
    refuse_trained_documents({"ft": str(run / "final")}, {"align": docs})  # no document holds it: no error


def _bare_copy(folder, to):
    """``folder`` without its tokenizer files: what a trainer checkpoint saved without a tokenizer looks like."""
    import shutil

    shutil.copytree(folder, to, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json", "vocab.json",
                                                             "merges.txt", "chat_template*"))
    return to


@pytest.mark.slow  # scores a checkpoint three times (two tokenizers)
def test_tokenizer_for_a_checkpoint_saved_without_one(setup, tmp_path):
    """The no-tokenizer message suggests --tokenizer, which compare has: NAME=PATH for one model gives the scores
    of the same weights with their tokenizer; another tokenizer is another score (the cache key holds it: a key
    without the tokenizer would return the first tokenizer's scores for the second)."""
    root, _ = setup
    bare = _bare_copy(root / "ckpt", tmp_path / "bare")
    common = ["--base", root / "base", *_data(root), "--json", "-"]
    refused = _run(root, *common, "--checkpoint", f"ft={bare}")
    assert refused.exit_code == 2 and "give one with --tokenizer PATH" in refused.output
    own = json.loads(_run(root, *common, "--checkpoint", f"ft={root / 'ckpt'}").stdout)
    given = json.loads(_run(root, *common, "--checkpoint", f"ft={bare}", "--tokenizer", f"ft={root / 'base'}").stdout)
    for d in ("align", "pre"):
        assert given["checkpoints"]["ft"]["datasets"][d]["bits_per_byte"] == own["checkpoints"]["ft"]["datasets"][d]["bits_per_byte"]
    assert given["config"]["tokenizers"] == {"ft": str(root / "base")}
    other = json.loads(_run(root, *common, "--checkpoint", f"ft={bare}", "--tokenizer", f"ft={root / 'other'}").stdout)
    assert other["checkpoints"]["ft"]["datasets"]["align"]["bits_per_byte"] != given["checkpoints"]["ft"]["datasets"]["align"]["bits_per_byte"]


def test_tokenizer_options_name_one_model_or_every_model(tmp_path):
    from elastic_theory.cli.inputs import parse_tokenizers

    labels = ["base", "a", "b"]
    assert parse_tokenizers([], labels) == {"base": None, "a": None, "b": None}
    assert parse_tokenizers(["tok", "a=tokA"], labels) == {"base": "tok", "a": "tokA", "b": "tok"}  # NAME wins
    odd = tmp_path / "x=y"
    odd.mkdir()
    assert parse_tokenizers([str(odd)], labels)["b"] == str(odd)  # an existing path with "=" is a path
    for items, message in ((["c=tok"], "no model named 'c'"), (["t1", "t2"], "both name a tokenizer for every model"),
                           (["a=t1", "a=t2"], "'a' is given two tokenizers")):
        with pytest.raises(ValueError, match=message):
            parse_tokenizers(items, labels)


def test_a_one_document_dataset_is_refused_before_any_model_loads(setup, tmp_path, monkeypatch):
    """Before, the paired bootstrap refused it only after every model was scored. Kills a count check placed after
    scoring (the load would fail the test) and one that looks at the first dataset only (the short one is last)."""
    root, _ = setup
    monkeypatch.setattr(empirical, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("loaded a model"))
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": "a single document"}) + "\n")
    result = _run(root, "--base", root / "base", "--checkpoint", f"a={root / 'ckpt'}", *_data(root),
                  "--data", f"one={one}", cache=False)
    assert result.exit_code == 2, result.output
    assert "--data one: 1 document; an interval over documents needs at least 2" in result.output
    result = _run(root, "--base", root / "base", "--checkpoint", f"a={root / 'ckpt'}", *_data(root),
                  "--n-resamples", "10000000000", cache=False)
    assert result.exit_code == 2 and "--n-resamples 10000000000: the bootstrap over the 20 documents" in result.output
