"""Fuzz campaigns for the loaders: tiny seed models of every format, damaged every way.

:func:`build_seeds` writes one small model per format (built from code, random weights, no
download); each campaign of :data:`FORMATS` mutates those seeds (see :mod:`_fuzz`), hands the
result to :func:`pyinfer.load_model` exactly as a user's file would be, and, when it loads, runs
it once on inputs of the declared shapes. The contract: a typed pyinfer error or a valid result.
"""

from __future__ import annotations

import atexit
import dataclasses
import io
import json
import pickle
import pickletools
import random
import shutil
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from _fuzz import (
    MUTATIONS,
    Tree,
    mutate_bytes,
    mutate_tree,
    read_tree,
    register,
    rng_for,
    write_tree,
)

#: The input every seed model takes: one float32 tensor ``x`` of shape (batch, 8).
FEATURES = 8


@dataclasses.dataclass(frozen=True)
class Format:
    """One loader campaign: its seed files, the extension of random files, the load options."""

    name: str
    seeds: tuple[str, ...]
    suffix: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    framework: str = "torch"


#: Weights-only seeds: the architecture to fill, and the input shape so a model that loads runs.
_WEIGHTS_OPTIONS = {
    "architecture": "_fuzz_loaders:TinyNet",
    "input_shapes": {"x": ["batch", FEATURES]},
}

#: Every format pyinfer loads, with the seeds :func:`build_seeds` writes for it.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("torch_zip", ("state_dict.pt", "checkpoint.pth"), ".pt", _WEIGHTS_OPTIONS),
        Format("torch_legacy", ("legacy.pt",), ".pth", _WEIGHTS_OPTIONS),
        Format("pickle", ("module.pkl",), ".pkl"),
        Format("torchscript", ("scripted.pt",), ".pt", {"input_shapes": {"x": [1, FEATURES]}}),
        Format("torch_export", ("exported.pt2",), ".pt2"),
        Format("onnx", ("model.onnx", "external"), ".onnx", framework="onnx"),
        # Keras models run eagerly (call_mode="direct"): the default traces a tf.function for
        # each model loaded, ~80 ms that exercise TensorFlow's tracing, not the file's parsers.
        Format("keras", ("model.keras",), ".keras", {"call_mode": "direct"}, "tf"),
        Format("keras_h5", ("model.h5",), ".h5", {"call_mode": "direct"}, "tf"),
        Format("savedmodel", ("savedmodel",), "", framework="tf"),
        Format("tflite", ("model.tflite",), ".tflite", framework="tf"),
    ]
}


def _torch_net() -> Any:
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(FEATURES, 16)
            self.fc2 = torch.nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    return TinyNet


def __getattr__(name: str) -> Any:
    # ``architecture="_fuzz_loaders:TinyNet"`` resolves here, importing torch only when asked.
    if name == "TinyNet":
        return _torch_net()
    raise AttributeError(name)


def build_seeds(folder: Path, frameworks: set[str]) -> dict[str, dict[str, Any]]:
    """Writes the seed models of the given frameworks; returns each campaign's config."""
    folder.mkdir(parents=True, exist_ok=True)
    if "torch" in frameworks or "onnx" in frameworks:
        import torch

        torch.manual_seed(0)
        net = _torch_net()().eval()
        example = torch.randn(2, FEATURES)
    if "torch" in frameworks:
        torch.save(net.state_dict(), folder / "state_dict.pt")
        torch.save({"state_dict": net.state_dict(), "epoch": 3}, folder / "checkpoint.pth")
        torch.save(net.state_dict(), folder / "legacy.pt", _use_new_zipfile_serialization=False)
        plain = {"weights": np.arange(6, dtype=np.float32), "epoch": 3}
        (folder / "module.pkl").write_bytes(pickle.dumps(plain))
        with warnings.catch_warnings():
            # torch 2.14 deprecates torch.jit.* (FutureWarning, an error under pytest): the
            # TorchScript files users have still load.
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.trace(net, example), str(folder / "scripted.pt"))
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, str(folder / "exported.pt2"))
    if "onnx" in frameworks:
        from pyinfer.export import export_onnx

        export_onnx(net, folder / "model.onnx", example, input_names=["x"], dynamo=False)
        import onnx

        proto = onnx.load(str(folder / "model.onnx"))
        (folder / "external").mkdir(exist_ok=True)
        onnx.save_model(
            proto,
            str(folder / "external" / "model.onnx"),
            save_as_external_data=True,
            location="model.onnx.data",
            size_threshold=0,
        )
    if "tf" in frameworks:
        import keras

        keras.utils.set_random_seed(0)
        inputs = keras.Input((FEATURES,), name="x")
        hidden = keras.layers.Dense(16, activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
        model.save(folder / "model.keras")
        model.save(folder / "model.h5")
        from pyinfer.export import export_keras

        export_keras(model, folder / "savedmodel", format="saved_model")
        export_keras(model, folder / "model.tflite", format="tflite")
    return {
        f.name: {
            "seed": f"loader-{f.name}",
            "format": f.name,
            "seeds": [str(folder / s) for s in f.seeds],
        }
        for f in FORMATS.values()
        if f.framework in frameworks
    }


# -- structure-aware mutations (torch files: pickles and the JSON of .pt2 archives) -------------

#: Integers that break sizes, strides, offsets, counts and versions in interesting ways.
_INTS = (0, 1, -1, 2, 3, 4, 7, 8, 16, 17, 64, 255, 256, 65535, 65536, 2**31 - 1, -(2**31))
_INT_OPS = {"BININT1": 2, "BININT2": 3, "BININT": 5}


def _pickle_ints(data: bytes) -> list[tuple[int, int, int]]:
    """``(position, length, value)`` of the integer opcodes of every pickle at the start of
    ``data`` (a legacy ``torch.save`` file is several pickles, then raw storage bytes)."""
    found: list[tuple[int, int, int]] = []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for op, arg, at in pickletools.genops(stream):
                if op.name in _INT_OPS and isinstance(arg, int):
                    found.append((at, _INT_OPS[op.name], arg))
                elif op.name == "LONG1" and isinstance(arg, int):
                    found.append((at, 2 + data[at + 1], arg))
    except Exception:  # raw storage bytes after the pickles, or a pickle already damaged
        pass
    return found


def _encode_int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    body = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(body)]) + body


def mutate_pickle(data: bytes, rng: random.Random) -> bytes:
    """Changes one to three integers of the pickles in ``data``, which stay well-formed."""
    ints = _pickle_ints(data)
    if not ints:
        return mutate_bytes(data, rng, "bit_flips")
    out = data
    chosen = rng.sample(ints, min(len(ints), rng.choice([1, 1, 2, 3])))
    for at, length, value in sorted(chosen, reverse=True):  # from the end: positions hold
        new = rng.choice([*_INTS, value + 1, value - 1, value * 2])
        out = out[:at] + _encode_int(new) + out[at + length :]
    return out


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Replaces or removes one value of a JSON document, which stays well-formed."""
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng, "bit_flips")
    slots: list[tuple[Any, Any]] = []  # (container, key or index) of every value

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)):
                walk(value)

    if isinstance(doc, (dict, list)):
        walk(doc)
    if not slots:
        return mutate_bytes(data, rng, "bit_flips")
    node, key = rng.choice(slots)
    if rng.random() < 0.2:
        del node[key]
    else:
        node[key] = rng.choice([*_INTS, None, "", "x", True, [], {}, 1.5, 1e308])
    return json.dumps(doc).encode()


def mutate_structure(tree: Tree, rng: random.Random) -> Tree:
    """One value of a pickle (or, in a zip archive, of a ``.pkl`` or ``.json`` member) changed."""
    name = max(tree, key=lambda n: len(tree[n]))
    data = tree[name]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            members = [(info, src.read(info)) for info in src.infolist()]
    except (zipfile.BadZipFile, ValueError, OSError):
        return {**tree, name: mutate_pickle(data, rng)}
    documents = [
        i for i, (info, _) in enumerate(members) if info.filename.endswith((".pkl", ".json"))
    ]
    if not documents:
        return {**tree, name: mutate_bytes(data, rng, "bit_flips")}
    target = rng.choice(documents)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for i, (info, body) in enumerate(members):
            mutate = mutate_json if info.filename.endswith(".json") else mutate_pickle
            dst.writestr(info, mutate(body, rng) if i == target else body)
    return {**tree, name: out.getvalue()}


class LoaderCampaign:
    """Damaged copies of a format's seeds, loaded with :func:`pyinfer.load_model`."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.format = FORMATS[config["format"]]
        self.seed = config["seed"]
        self.seeds: list[tuple[Tree, str]] = []
        for seed in config["seeds"]:
            path = Path(seed)
            tree = read_tree(path)
            # What the user passes: the file itself, or for a folder model the .onnx inside it
            # (ONNX with external data) or the folder (SavedModel).
            entry = (
                next((n for n in tree if n.endswith(".onnx")), "") if path.is_dir() else path.name
            )
            self.seeds.append((tree, entry))
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"pyinfer-fuzz-{self.format.name}-"))
            atexit.register(shutil.rmtree, self._scratch, True)
        return self._scratch

    def case(self, index: int) -> tuple[str, Tree, str]:
        rng = rng_for(self.seed, index)
        kind = MUTATIONS[index % len(MUTATIONS)]
        tree, entry = self.seeds[rng.randrange(len(self.seeds))]
        if self.format.framework == "torch" and kind == "zip_member" and rng.random() < 0.5:
            # Half the member mutations of torch files change one value of a pickle or JSON
            # document and keep it well-formed, so the damage reaches past the parser.
            return "structure", mutate_structure(tree, rng), entry
        mutated = mutate_tree(tree, rng, kind, self.format.suffix or ".pb")
        if kind == "random_bytes":
            # A file of random bytes under the format's name (for a folder format, the file
            # the loader looks for inside the folder).
            name = entry or "saved_model.pb"
            mutated = {name: next(iter(mutated.values()))}
            entry = entry if entry else ""
        return kind, mutated, entry

    def save(self, case: tuple[str, Tree, str], folder: Path) -> Path:
        write_tree(case[1], folder)
        return folder

    def run(self, case: tuple[str, Tree, str]) -> str:
        import pyinfer

        _, tree, entry = case
        root = self.scratch / "model"
        _rewrite(tree, root)
        path = root / entry if entry else root
        with pyinfer.load_model(path, device="cpu", **self.format.options) as model:
            shapes = {spec.name: spec.concrete_shape(batch_size=2) for spec in model.inputs}
            if any(np.prod(shape, dtype=np.float64) > 1e6 for shape in shapes.values()):
                return "loaded (inputs too large to run)"
            inputs = {s.name: np.ones(shapes[s.name], dtype=s.dtype) for s in model.inputs}
            outputs = model(inputs)
            for name, value in outputs.items():
                if not isinstance(value, np.ndarray):
                    raise AssertionError(f"output {name} is a {type(value).__name__}")
        return "ok"


def _rewrite(tree: Tree, root: Path) -> None:
    """Writes ``tree`` under ``root``, removing what the previous input left there.

    Unlike :func:`_fuzz.write_tree`, keeps ``root`` and the folders the new tree needs:
    removing and recreating the folder for each input cost more than loading most damaged
    inputs (an ``rmdir`` took about 6 ms on the ext4 disk of the development machine; a
    damaged file that format detection rejects, under 1 ms).
    """
    needed = {Path()} | {parent for name in tree for parent in Path(name).parents}
    if root.exists():
        for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
            if path.is_dir() and not path.is_symlink():
                if path.relative_to(root) not in needed:
                    path.rmdir()
            else:
                path.unlink()
    for name, data in tree.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


for _name in FORMATS:
    register(_name)(LoaderCampaign)
