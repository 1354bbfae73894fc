"""Hugging Face model folders: ``config.json`` + safetensors (or ``pytorch_model.bin``) weights.

The model class is the one ``config.architectures`` names (``BertForSequenceClassification``:
the task comes with it), from transformers itself; ``AutoModel`` where the config names none.
A config whose architecture is code stored in the folder (``auto_map``, ``trust_remote_code``)
is refused unless the caller passed ``trust_code=True`` (CLI: ``--trust-code``), as untrusted
pickles are: that code runs with your user's rights. The tokenizer saved in the folder is
attached (``model.tokenizer``) and makes the example inputs: real token ids, the tokenizer's
attention mask and token type ids.

The module that runs is a thin wrapper: it takes the inputs by position in the model's order
(``input_ids``, ``attention_mask``, ``token_type_ids`` for BERT), calls the transformers model
by keyword and returns its outputs as a dict of tensors (``last_hidden_state``,
``pooler_output``, ``logits``...). The wrapper records which dimensions are dynamic (batch and
sequence) in ``pyinfer_dynamic_axes``, which :mod:`pyinfer.export` reads. ``transformers`` is
imported here only, when a folder is loaded.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends import frameworks
from pyinfer.backends.base import Device, Dim, ModelFormat, TensorSpec, check_options
from pyinfer.backends.huggingface import (
    DEFAULT_SEQUENCE_LENGTH,
    TEXT_INPUTS,
    TextEncoder,
    attach_tokenizer,
    load_tokenizer,
    read_config,
)
from pyinfer.backends.torch.build import _sizes
from pyinfer.backends.torch.checkpoints import LoadReport
from pyinfer.backends.torch.model import TorchModel, _numpy_dtype
from pyinfer.backends.torch.options import _apply_threads, _torch_device
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    FrameworkNotInstalledError,
    InvalidArgumentError,
    UntrustedModelError,
)

__all__ = ["HF_OPTIONS", "from_transformers", "load_folder"]

logger = logging.getLogger(__name__)

#: The options a Hugging Face folder takes (the torch loader's speed-up flags are accepted and
#: recorded, but freezing applies to TorchScript only).
HF_OPTIONS: dict[str, str] = {
    "trust_code": "run model code stored in the folder (trust_remote_code); default False",
    "strict": "missing or unexpected weights are an error; default True",
    "sequence_length": f"tokens per example text; default {DEFAULT_SEQUENCE_LENGTH} or less",
    "num_threads": "torch's intra-op threads",
    "channels_last": "accepted, no effect on text models",
    "freeze": "accepted, TorchScript only",
    "optimize": "accepted, TorchScript only",
    "input_shapes": "accepted, the inputs come from the config and tokenizer",
    "input_dtypes": "accepted, the inputs come from the config and tokenizer",
}


@contextlib.contextmanager
def _quiet(transformers: ModuleType) -> Iterator[None]:
    """Keeps transformers' progress bars and advice off the console while a folder loads."""
    log = transformers.utils.logging
    level = log.get_verbosity()
    bars = log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(level)
        if bars:
            log.enable_progress_bar()


def _import_transformers() -> ModuleType:
    try:
        import transformers  # heavy: imported only to load a folder
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            "loading a Hugging Face model folder needs transformers: pip install transformers"
        ) from exc
    return transformers


def _model_class(transformers: ModuleType, folder: Path, config: Mapping[str, Any], trust: bool):  # type: ignore[no-untyped-def]
    """The transformers class of ``config.architectures``, or AutoModel; refuses folder code."""
    names = config.get("architectures") or []
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    auto_map = config.get("auto_map")
    if name is not None and hasattr(transformers, name):
        return getattr(transformers, name), name
    if auto_map:
        code = sorted({str(v).split(".")[0] + ".py" for v in dict(auto_map).values()})
        if not trust:
            raise UntrustedModelError(
                f"{folder} is a Hugging Face model whose architecture "
                f"{name or '(unnamed)'} is code stored in the folder ({', '.join(code)}): "
                "loading it would run that code (trust_remote_code), which can do anything "
                "your user can. If you trust where the folder came from, load it with "
                "trust_code=True (CLI: --trust-code)",
                path=folder,
            )
        logger.warning("running the model code in %s (trust_code=True)", folder)
        return transformers.AutoModel, name or "AutoModel"
    if name is not None:
        raise ArchitectureError(
            f"{folder}/config.json names the architecture {name!r}, which transformers "
            f"{transformers.__version__} does not have; upgrade transformers or check the config",
            path=folder,
        )
    return transformers.AutoModel, "AutoModel"


def _forward_parameters(module: Any) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - transformers models have signatures
        return []
    return [p.name for p in params if p.kind in {p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY}]


def _input_specs(
    module: Any, config: Mapping[str, Any], encoder: TextEncoder | None
) -> tuple[TensorSpec, ...]:
    params = _forward_parameters(module)
    if "input_ids" in params:
        made = set(encoder.input_names) if encoder is not None else {"input_ids", "attention_mask"}
        if encoder is None and "token_type_ids" in params and config.get("type_vocab_size"):
            made.add("token_type_ids")
        names = [p for p in params if p in TEXT_INPUTS and p in made]
        return tuple(TensorSpec(n, ("batch", "sequence"), np.dtype(np.int64)) for n in names)
    if "pixel_values" in params:
        size = config.get("image_size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        shape = ("batch", int(config.get("num_channels", 3)), int(height), int(width))
        return (TensorSpec("pixel_values", shape, np.dtype(np.float32)),)
    raise ArchitectureError(
        f"the model's forward takes {', '.join(params[:6])}: pyinfer runs Hugging Face models "
        "that take input_ids (text) or pixel_values (images)",
    )


def _wrapper(torch: ModuleType, model: Any, names: Sequence[str], max_sequence: int) -> Any:
    """A module whose forward takes ``names`` by position and returns a dict of tensors."""

    class HuggingFaceForward(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.input_names = tuple(names)
            axes: dict[str, dict[int, tuple[str, int | None]]] = {}
            for n in names:
                axes[n] = {0: ("batch", None)}
                if n in TEXT_INPUTS:
                    axes[n][1] = ("sequence", max_sequence)
            self.pyinfer_dynamic_axes = axes

        def forward(self, *args: Any) -> dict[str, Any]:
            result = self.model(**dict(zip(self.input_names, args, strict=True)), return_dict=True)
            return {k: v for k, v in result.items() if isinstance(v, torch.Tensor)}

    def forward(self: Any, *args: Any) -> dict[str, Any]:
        return HuggingFaceForward.forward(self, *args)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", kind), *(inspect.Parameter(n, kind) for n in names)]
    )
    named = type("HuggingFaceForward", (HuggingFaceForward,), {"forward": forward})
    return named().eval()


def load_folder(path: Path, device: Device, *, name: str, **options: Any) -> TorchModel:
    """Loads a Hugging Face model folder with transformers.

    Args:
        path: The folder (``config.json`` and weights).
        device: Where to run it.
        name: Name for reports.
        **options: See :data:`HF_OPTIONS`.

    Returns:
        The model, its tokenizer (if the folder has one) as ``model.tokenizer``.

    Raises:
        InvalidArgumentError: On an unknown option.
        UntrustedModelError: If the architecture is code in the folder and ``trust_code`` is
            not set.
        ArchitectureError: If transformers lacks the architecture, or the weights do not fit it
            (``strict``).
        CorruptModelError: If the config or weights cannot be read.
    """
    check_options(options, HF_OPTIONS, loader="Hugging Face folder", path=path)
    trust = bool(options.get("trust_code", False))
    torch = frameworks.import_torch()
    _torch_device(torch, device)  # a device that cannot be used fails before the load
    _apply_threads(torch, options)
    transformers = _import_transformers()
    config = read_config(path)
    cls, arch = _model_class(transformers, path, config, trust)
    try:
        with _quiet(transformers):
            hf_model, info = cls.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=trust, output_loading_info=True
            )
    except (UntrustedModelError, ArchitectureError):
        raise
    except Exception as exc:
        lines = [x for x in str(exc).strip().splitlines() if x.strip()]
        raise CorruptModelError(
            f"transformers could not load {arch} from {path} ({type(exc).__name__}: "
            f"{lines[-1][:300] if lines else ''}); the weights or config are damaged or do not "
            "belong together",
            path=path,
        ) from exc
    report = LoadReport(
        missing_keys=tuple(info.get("missing_keys", ())),
        unexpected_keys=tuple(info.get("unexpected_keys", ())),
        shape_mismatches=tuple(
            (str(k), tuple(a), tuple(b)) for k, a, b in info.get("mismatched_keys", ())
        ),
    )
    if not report.ok:
        if options.get("strict", True):
            raise ArchitectureError(
                f"the weights in {path} do not fit {arch}: {report.summary()}; pass "
                "strict=False to load the ones that fit (the rest keep random values)",
                path=path,
            )
        logger.warning("loading %s into %s with strict=False: %s", path, arch, report.summary())
    tokenizer = load_tokenizer(path)
    return from_transformers(
        hf_model,
        device,
        name=name,
        path=path,
        tokenizer=tokenizer,
        sequence_length=options.get("sequence_length"),
        options={
            "architecture": arch,
            "trust_code": trust,
            "strict": bool(options.get("strict", True)),
            "load_report": report.to_dict(),
        },
        load_report=report,
    )


def from_transformers(
    hf_model: Any,
    device: Device,
    *,
    name: str,
    path: Path | None = None,
    tokenizer: Any = None,
    sequence_length: int | None = None,
    options: Mapping[str, Any] | None = None,
    load_report: LoadReport | None = None,
) -> TorchModel:
    """Wraps a transformers model (in memory) as a :class:`TorchModel` with token inputs.

    Args:
        hf_model: A transformers ``PreTrainedModel`` taking ``input_ids`` or
            ``pixel_values``.
        device: Where to run it (the model is moved there, in eval mode).
        name: Name for reports.
        path: The folder it was loaded from, if any.
        tokenizer: Its tokenizer (anything :class:`TextEncoder` takes); the inputs it makes
            are the model's, and it makes the example inputs. Without one, examples are ids
            drawn from the vocabulary with a full mask.
        sequence_length: Tokens per example (``dims["sequence"]`` overrides it per call);
            128 or the model's position embeddings if fewer by default.
        options: Entries added to :attr:`~pyinfer.backends.base.Model.options`.
        load_report: How the weights fitted, for a loaded folder.

    Returns:
        The model, with ``model.tokenizer`` (a :class:`TextEncoder` or ``None``).

    Raises:
        InvalidArgumentError: On a ``sequence_length`` that is not a positive int.
        ArchitectureError: If the model takes neither ``input_ids`` nor ``pixel_values``.
    """
    torch = frameworks.import_torch()
    tdev = _torch_device(torch, device)
    hf_model = hf_model.to(tdev).eval()
    for param in hf_model.parameters():
        param.requires_grad_(False)
    config = hf_model.config.to_dict()
    encoder = TextEncoder(tokenizer) if tokenizer is not None else None
    inputs = _input_specs(hf_model, config, encoder)
    max_positions = int(config.get("max_position_embeddings") or 0) or None
    if sequence_length is not None and (
        isinstance(sequence_length, bool)
        or not isinstance(sequence_length, int)
        or sequence_length < 1
    ):
        raise InvalidArgumentError(
            f"sequence_length must be a positive int, not {sequence_length!r}"
        )
    default_sequence = sequence_length or min(
        DEFAULT_SEQUENCE_LENGTH, max_positions or DEFAULT_SEQUENCE_LENGTH
    )
    module = _wrapper(torch, hf_model, [s.name for s in inputs], max_positions or 0)
    count, nbytes = _sizes(hf_model)
    model = TorchModel(
        module,
        torch_mod=torch,
        name=name,
        format=ModelFormat.PYTORCH,
        device=device,
        path=path,
        inputs=inputs,
        outputs=(),
        parameter_count=count,
        parameter_bytes=nbytes,
        options={
            "architecture": type(hf_model).__name__,
            **dict(options or {}),
            "tokenizer": None if encoder is None else type(encoder.tokenizer).__name__,
            "sequence_length": default_sequence,
            "num_threads": int(torch.get_num_threads()),
            "channels_last": False,
            "freeze": False,
            "optimize": False,
            "inference_mode": True,
        },
        load_report=load_report,
    )
    model.tokenizer = None  # type: ignore[attr-defined]
    if encoder is not None:
        attach_tokenizer(model, encoder, default_sequence=default_sequence)
    elif any(s.name == "input_ids" for s in inputs):
        _attach_vocab_examples(model, config, default_sequence)
        model.default_dims["sequence"] = default_sequence
    model.outputs = _outputs(model, default_sequence)
    return model


def _attach_vocab_examples(model: TorchModel, config: Mapping[str, Any], length: int) -> None:
    """Example inputs without a tokenizer: ids drawn from the vocabulary, and a full mask.

    The ids start past the first 1000 in a vocabulary that large, where BERT-like vocabularies
    keep their special and unused tokens.
    """
    vocab = int(config.get("vocab_size") or 100)
    low = 1000 if vocab > 2000 else 0

    def example_inputs(
        batch_size: int = 1, *, seed: int = 0, dims: Mapping[str, int] | None = None
    ) -> dict[str, np.ndarray]:
        seq = int((dims or {}).get("sequence", length))
        rng = np.random.default_rng(seed)
        out = {}
        for spec in model.inputs:
            if spec.name == "input_ids":
                out[spec.name] = rng.integers(low, vocab, size=(batch_size, seq), dtype=np.int64)
            elif spec.name == "attention_mask":
                out[spec.name] = np.ones((batch_size, seq), np.int64)
            else:
                out[spec.name] = np.zeros((batch_size, seq), np.int64)
        return out

    model.example_inputs = example_inputs  # type: ignore[method-assign]


def _outputs(model: TorchModel, length: int) -> tuple[TensorSpec, ...]:
    """Output specs from two runs: batch 1 at ``length`` and batch 2 at a shorter length."""
    shorter = max(1, length - 1)
    first = model.to_numpy(model.run_native(model.to_native(model.example_inputs(1))))
    second = model.to_numpy(
        model.run_native(model.to_native(model.example_inputs(2, dims={"sequence": shorter})))
    )
    specs = []
    for out_name, array in first.items():
        other = second[out_name].shape
        dims: list[Dim] = list(array.shape)
        if dims and dims[0] == 1 and other[:1] == (2,):
            dims[0] = "batch"
        for i in range(1, len(dims)):
            if shorter != length and dims[i] == length and other[i] == shorter:
                dims[i] = "sequence"
        specs.append(TensorSpec(out_name, tuple(dims), _numpy_dtype(str(array.dtype))))
    return tuple(specs)
