"""Configs to JSON and back, ``--set`` overrides and config files: exact types, one-line errors naming the key."""

import json
from dataclasses import dataclass, field

import pytest

from elastic_theory.infra.config import OverrideRefused, apply_overrides, config_from_dict, config_to_dict, read_config_file
from elastic_theory.infra.trainconfig import ModelConfig, StageConfig


@dataclass(frozen=True)
class Nested:
    model: ModelConfig = field(default_factory=ModelConfig)
    stages: tuple[StageConfig, ...] = (StageConfig(),)
    seeds: tuple[int, ...] = (0, 1)
    pair: tuple[float, str] = (0.5, "a")
    limit: int | None = None
    flag: bool = False


def test_a_config_goes_to_json_and_back_unchanged():
    config = Nested(seeds=(3,), pair=(2.0, "b"), limit=7, flag=True)
    data = config_to_dict(config)
    assert data["seeds"] == [3] and data["model"] == {"n_layer": 2, "n_embd": 64, "n_head": 2, "dtype": "float64"}
    assert config_from_dict(Nested, json.loads(json.dumps(data))) == config
    assert config_from_dict(Nested, {}) == Nested()
    assert config_from_dict(Nested, {"pair": [1, "c"]}).pair == (1.0, "c")  # an integer where a float goes: a float


@pytest.mark.parametrize(("data", "message"), [
    ({"width": 3}, "unknown config key 'width'; known keys: model, stages, seeds, pair, limit, flag"),
    ({"model": {"width": 3}}, r"unknown config key model\.'width'; known keys: model\.n_layer, model\.n_embd"),
    ({"model": 3}, "model must be an object with the fields of ModelConfig, got 3"),
    ({"seeds": 3}, "seeds must be a list, got 3"),
    ({"seeds": [0, 1.5]}, r"seeds\[1\] must be an integer, got 1.5"),
    ({"pair": [1.0]}, "pair must have 2 entries, got 1"),
    ({"pair": [True, "a"]}, r"pair\[0\] must be a number, got True"),
    ({"pair": [1.0, 2]}, r"pair\[1\] must be a string, got 2"),
    ({"limit": "x"}, "limit must be an integer, got 'x'"),
    ({"flag": 1}, "flag must be true or false, got 1"),
    ({"stages": [{"steps": True}]}, r"stages\[0\].steps must be an integer, got True"),
])
def test_a_wrong_value_is_refused_naming_its_key(data, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(Nested, data)


def test_overrides_reach_nested_fields_with_json_or_bare_string_values():
    config = apply_overrides(Nested(), ["model.n_embd=32", "model.dtype=float32", "seeds=[5]", "limit=null"])
    assert (config.model.n_embd, config.model.dtype, config.seeds, config.limit) == (32, "float32", (5,), None)
    for items, message, malformed in [
        (["model"], "'model': expected KEY=VALUE", True),
        (["=1"], "'=1': expected KEY=VALUE", True),
        (["seeds.x=1"], "'seeds.x=1': unknown config key 'seeds'", False),
        (["model.width=1"], "'model.width=1': unknown config key 'model.width'; known: dtype, n_embd, n_head, n_layer", False),
        (["limit=1", "nope=1", "model"], "'nope=1': unknown config key 'nope'; known: flag, limit, model, pair, seeds, "
                                         "stages", False),  # the first refused item, in order
    ]:
        with pytest.raises(OverrideRefused) as refused:
            apply_overrides(Nested(), items)
        assert str(refused.value) == message and refused.value.malformed is malformed and refused.value.item in items
    with pytest.raises(ValueError, match="model.n_embd must be an integer, got 'wide'"):
        apply_overrides(Nested(), ["model.n_embd=wide"])


def test_a_config_file_names_its_experiment(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"experiment": "x", "config": {"seeds": [4]}}))
    assert read_config_file(path, "x") == {"seeds": [4]}
    for name, text, message in [
        ("y", None, f'{path}: expected {{"experiment": "y", "config": {{...}}}}'),
        ("x", "{", f"{path}: not valid JSON (Expecting property name enclosed in double quotes)"),
        ("x", '{"experiment": "x", "config": []}', f'{path}: expected {{"experiment": "x", "config": {{...}}}}'),
    ]:
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError) as refused:
            read_config_file(path, name)
        assert str(refused.value) == message
    with pytest.raises(ValueError, match="none.json: no such file"):
        read_config_file(tmp_path / "none.json", "x")
