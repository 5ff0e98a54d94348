"""Loading a causal language model and its tokenizer: local directories, the offline cache, GGUF files.

Nothing here downloads: every load uses ``local_files_only=True``, so a hub name that is not
already in the local Hugging Face cache fails at once with a message, instead of hanging on a
network call.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .builtin_models import (  # noqa: F401 (imported from here too)
    BUILTIN_MODELS,
    SMOLLM2_ALIAS,
    builtin_copy,
    default_cache_dir,
    smollm2_gguf_path,
    smollm2_local_copy,
)

__all__ = [
    "ModelSource",
    "default_dtype",
    "load_model_and_tokenizer",
    "parse_dtype",
    "load_tokenizer",
    "locate_model",
    "resolve_device",
]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; None means CUDA when available, else the CPU.

    Raises ``ValueError`` for a device type other than cpu, cuda and mps, a device this machine
    does not have (CUDA or MPS), or a CUDA index beyond the devices present.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hint = "use 'cpu', 'cuda' or 'cuda:N'"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} ({exc}); {hint}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but this machine has no CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0; {hint}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} asked for, but this machine has no Apple MPS device; {hint}")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r}: unsupported device type {dev.type!r}; {hint}")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA (tensor-core matmuls), float32 on the CPU (bf16 matmuls are slower there)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``dtype`` (a name such as ``"float32"``, a ``torch.dtype``, or None for :func:`default_dtype` on ``device``)
    as a ``torch.dtype``; ``ValueError`` naming the accepted names otherwise."""
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float64": torch.float64, "fp64": torch.float64, "float32": torch.float32, "fp32": torch.float32,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[dtype]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, found without loading anything (:func:`locate_model`).

    ``location``: the directory or cached hub name given to ``from_pretrained``; ``gguf_file``: the
    GGUF file name inside it, or None; ``adapter``: a PEFT adapter directory applied on top of the
    base model at ``location``, or None; ``tokenizer``: where the tokenizer is loaded from (with
    ``gguf_file`` when it is the GGUF file's own tokenizer).
    """

    name: str
    location: str
    gguf_file: str | None
    adapter: str | None
    tokenizer: str
    tokenizer_in_gguf: bool

    def describe(self) -> dict:
        """The resolved source for a result file: what was asked for and which files were used."""
        out = {"name": self.name, "location": self.location, "gguf_file": self.gguf_file,
               "adapter": self.adapter, "tokenizer": self.tokenizer}
        if self.gguf_file is not None:
            out["quantization"] = _gguf_quantization(self.gguf_file)
        if self.name in BUILTIN_MODELS:
            builtin = BUILTIN_MODELS[self.name]
            gguf = builtin.source()
            out["quantization"] = None if gguf is None else _gguf_quantization(gguf.name)
            out["description"] = (f"{builtin.description} (the GGUF file of the {builtin.package} package, "
                                  f"converted once into a cached copy); license: {builtin.license}")
        return out


def _gguf_quantization(file_name: str) -> str | None:
    """The quantization named in a GGUF file name (``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``Q4_1``,
    ``gemma-3-270m-q4_k_m.gguf`` -> ``Q4_K_M``), or None."""
    stem = Path(file_name).stem
    found = re.search(r"(?:^|[.\-])((?:[QqFf]|[Ii][Qq]|[Bb][Ff])\d+(?:_[A-Za-z0-9]+)*)$", stem)
    return found.group(1).upper() if found else None


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in _TOKENIZER_FILES)


def base_of_adapter(path: Path) -> str:
    """The base model a PEFT adapter folder names (``base_model_name_or_path``); ``ValueError`` if it names none."""
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path / 'adapter_config.json'}: not a readable JSON adapter config ({exc})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
        raise ValueError(f"{path / 'adapter_config.json'}: names no base_model_name_or_path; the adapter needs its base model")
    return str(base)


def locate_model(name_or_path: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> ModelSource:
    """Find a model's files from local files only (fast: nothing is loaded); ``ValueError`` when nothing usable matches.

    ``name_or_path`` is one of: a built-in model name (``"smollm2-135m"``, ``"gemma3-270m"``: its cached float32
    copy, converted on first use); a ``.gguf`` file; a directory written by
    ``save_pretrained`` (a Trainer checkpoint folder is one); a PEFT adapter directory (has
    ``adapter_config.json``; its base model, named there, is located by the same rules); a hub name
    already in the local Hugging Face cache. ``tokenizer``: a directory or cached name holding the
    tokenizer, for a model saved without one (default: the model's own, then the adapter base's).
    """
    name = str(name_or_path)
    if tokenizer is not None:
        tok_path = Path(tokenizer)
        if tok_path.exists() and not (tok_path.is_dir() and _has_tokenizer(tok_path)):
            raise ValueError(f"--tokenizer {tok_path}: not a folder holding a tokenizer (one of {', '.join(_TOKENIZER_FILES)})")
    explicit_tok = None if tokenizer is None else str(tokenizer)
    if name in BUILTIN_MODELS:
        copy = str(builtin_copy(name))
        return ModelSource(name, copy, None, None, explicit_tok or copy, False)
    path = Path(name)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name, str(path.parent), path.name, None, explicit_tok or str(path.parent), explicit_tok is None)
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            base = locate_model(base_of_adapter(path), explicit_tok or (name if _has_tokenizer(path) else None))
            return ModelSource(name, base.location, base.gguf_file, name, base.tokenizer, base.tokenizer_in_gguf)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: a model directory needs a config.json (save the model with model.save_pretrained) "
                             "or, for a LoRA/PEFT adapter, an adapter_config.json")
        if explicit_tok is None and not _has_tokenizer(path):
            raise ValueError(
                f"{path}: the model directory has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
                "give one with --tokenizer PATH (e.g. the base model's folder), or save it next to the model "
                "with tokenizer.save_pretrained(path)"
            )
        return ModelSource(name, name, None, None, explicit_tok or name, False)
    if path.exists():
        raise ValueError(f"{path}: not a model directory or a .gguf file")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id either
        cached = None
    if not isinstance(cached, str):
        raise ValueError(
            f"model {name!r} is neither a local directory nor in the local Hugging Face cache, and nothing is "
            "downloaded here: pass a directory made with save_pretrained, a .gguf file, or download the model first"
        )
    return ModelSource(name, name, None, None, explicit_tok or name, False)


_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def _weights_error(source: ModelSource, exc: BaseException) -> ValueError:
    """One line naming the weights file(s) and why they were refused (the first line of the loader's reason)."""
    where = Path(source.location)
    if source.gguf_file:
        files = [str(where / source.gguf_file)]
    else:
        files = sorted(str(p) for pattern in _WEIGHT_PATTERNS for p in where.glob(pattern)) or [str(where)]
    text = str(exc)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if "Weights only load failed" in text:
        what = unsafe.group(1) if unsafe else "an object that is not plain tensors"
        reason = (f"refused: the pickle would call {what}, which can run code; nothing was run and it is never "
                  "loaded unsafely. Re-save the model as safetensors (save_pretrained) from a trusted copy")
    else:
        reason = f"the weights could not be read ({text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__}); the file may be truncated or corrupt"
    return ValueError(f"{', '.join(files)}: {reason}")


def _load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    extra = {"gguf_file": source.gguf_file} if source.tokenizer_in_gguf else {}
    try:
        return AutoTokenizer.from_pretrained(source.tokenizer, local_files_only=True, **extra)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{source.tokenizer}: could not load the tokenizer ({exc})") from None


def load_tokenizer(name_or_path: str | os.PathLike, tokenizer: str | os.PathLike | None = None):
    """The tokenizer of a model that :func:`load_model_and_tokenizer` accepts (located by :func:`locate_model`),
    without loading the model."""
    return _load_tokenizer(locate_model(name_or_path, tokenizer))


@contextlib.contextmanager
def quiet_peft_deprecations() -> Iterator[None]:
    """Hide the FutureWarning that peft 0.21 triggers in transformers 5 on every ``PeftModel`` it builds
    (it reads the deprecated ``is_gradient_checkpointing``); nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    tokenizer: str | os.PathLike | None = None,
    source: ModelSource | None = None,
):
    """Load a causal LM and its tokenizer from local files only; returns ``(model, tokenizer)`` in eval mode.

    ``name_or_path`` is located by :func:`locate_model` (a ``save_pretrained`` directory or Trainer
    checkpoint, a ``.gguf`` file dequantized by transformers, a PEFT adapter directory whose base
    model is loaded and the adapter merged into it with peft's ``merge_and_unload``, a cached hub
    name, or a built-in name such as ``"smollm2-135m"``); ``source`` skips that step when the caller located it already.
    ``tokenizer``: where to load the tokenizer from when the model folder has none. ``device``:
    None picks CUDA when available, else the CPU. ``dtype``: None picks bfloat16 on CUDA and float32
    on the CPU. Weights are loaded the safe way only (safetensors, or torch's weights-only
    unpickling); remote code is never run.

    Raises ``ValueError`` (at once, without network access) for a name with no local files, a
    directory without a tokenizer, an unusable device or dtype, or weights that cannot be loaded
    safely (naming the file).
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = parse_dtype(dtype, dev)
    source = source or locate_model(name_or_path, tokenizer)
    tok = _load_tokenizer(source)
    extra = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(source.location, local_files_only=True, dtype=torch_dtype, **extra)
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError) as exc:
        raise _weights_error(source, exc) from None
    if source.adapter is not None:
        from peft import PeftModel

        try:
            with quiet_peft_deprecations():
                model = PeftModel.from_pretrained(model, source.adapter, is_trainable=False).merge_and_unload()
        except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError) as exc:
            raise _weights_error(ModelSource(source.name, source.adapter, None, None, "", False), exc) from None
    return model.to(dev).eval(), tok
