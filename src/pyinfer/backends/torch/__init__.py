"""The PyTorch backend: TorchScript, ``torch.save`` checkpoints, pickles, ``torch.export``.

:func:`load` turns a file into a :class:`TorchModel`; :func:`from_module` wraps an in-memory
module. Only this package imports torch (through :func:`~pyinfer.backends.frameworks.import_torch`).

Modules: ``loader`` (entry points), ``options`` (options, device, threads), ``files`` (reading each
format), ``pickle_scan`` and ``archives`` (the safety checks below), ``checkpoints`` (weights and
architectures), ``specs`` (inputs and outputs), ``build`` (building the model, freezing),
``model`` (:class:`TorchModel`), ``messages`` (shared error texts).

Safety. Every ``torch.save`` file is read with ``torch.load(..., weights_only=True)`` first, which
refuses to import anything but tensors and plain containers. A file that needs more (a whole
pickled module, or a malicious payload) raises :class:`~pyinfer.errors.UntrustedModelError`
unless the caller passed ``trust_code=True``; only then is it unpickled in full. A plain pickle
is never unpickled without ``trust_code=True``: its opcodes are only scanned (which runs
nothing, :func:`pickle_globals`) to name the code it would import. ``torch.export.load`` unpickles
parts of a ``.pt2`` archive in full and loads AOTInductor libraries, so every pickle in the archive
is scanned first (:func:`export_archive_code`) and one that imports more than ``weights_only``
allows, or a compiled library, needs ``trust_code=True``. ``torch.jit.load`` reads TorchScript
pickles with its own C++ unpickler, which resolves TorchScript types only and never calls Python.
An architecture is only ever imported from the caller's ``architecture=``, never from a name
stored in a checkpoint.

Checkpoints. A state_dict is matched against an architecture (a module instance, a factory or an
import string ``"pkg.mod:attr"``). Checkpoint dicts are searched for their weights under
``state_dict``, ``model_state_dict``, ``model``, ``net``, ``network`` and ``weights`` (or the key
given as ``state_dict_key``); with ``use_ema=True``, under the EMA keys ``ema``, ``model_ema``,
``state_dict_ema`` and ``ema_state_dict`` instead. The main weights are the default because they
are what the checkpoint's author saved as "the model" and EMA weights are absent from most
checkpoints; the model records ``ema_available`` so reports can say when a choice existed. Other
entries (optimizer, scheduler, epoch, ...) are ignored and listed in the load report. Prefixes
``module.`` (DataParallel/DDP) and ``_orig_mod.`` (``torch.compile``) are stripped when every key
has them and the architecture's keys do not.

Speed defaults (each switchable and recorded in :attr:`TorchModel.options`):

* ``channels_last`` (default: on for modules with 2-D convolutions on the CPU): weights and
  4-D inputs in NHWC memory order, which oneDNN runs faster (see
  ``benchmarks/bench_torch_defaults.py``); off by default on CUDA, where the gain depends on the
  dtype and the GPU and has not been measured;
* ``freeze`` / ``optimize`` (TorchScript only, default on): ``torch.jit.freeze`` then
  ``torch.jit.optimize_for_inference``; where an example input can be built the outputs are
  compared with the plain module's, and a failure or a deviation falls back to the plain module
  with a logged warning;
* ``num_threads``: torch's intra-op thread count (left as torch sets it unless given; the count
  in effect is recorded).

Outputs. A tensor is ``output``; a tuple or list gives ``output_0``, ``output_1``, ...; a dict
gives its keys in order (nested containers join the names with ``_``). Output specs of a
``torch.export`` program come from its graph. For other modules they are found by running the
model at load on random inputs of the declared shapes (``input_shapes``): once at batch 1 and,
when the batch is dynamic, once at batch 2, so an output dimension that follows the input batch
is marked ``"batch"``. Without declared shapes nothing is run at load and the outputs are
recorded from the first call.

Size. :attr:`~pyinfer.backends.base.Model.parameter_count` counts the scalars of the parameters
(each shared tensor once); :attr:`~pyinfer.backends.base.Model.parameter_bytes` is the bytes of
the parameters and buffers (BatchNorm statistics included), both measured before freezing.
"""

from __future__ import annotations

from pyinfer.backends.torch.archives import export_archive_code
from pyinfer.backends.torch.checkpoints import LoadReport
from pyinfer.backends.torch.loader import from_module, load
from pyinfer.backends.torch.model import TorchModel, flatten_outputs
from pyinfer.backends.torch.options import KNOWN_OPTIONS
from pyinfer.backends.torch.pickle_scan import COMPUTED_GLOBAL, pickle_globals

__all__ = [
    "COMPUTED_GLOBAL",
    "KNOWN_OPTIONS",
    "LoadReport",
    "TorchModel",
    "export_archive_code",
    "flatten_outputs",
    "from_module",
    "load",
    "pickle_globals",
]
