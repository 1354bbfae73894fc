"""The TensorFlow backend: Keras ``.h5`` / ``.keras`` files, SavedModel folders and TFLite files.

Three :class:`~pyinfer.backends.base.Model` classes share this package:

* :class:`KerasModel` (``.h5`` and ``.keras``): loaded with ``keras.models.load_model(...,
  compile=False)``. By default the model runs through a ``tf.function`` (``reduce_retracing``)
  wrapping ``model(x, training=False)``: measured with ``benchmarks/bench_tf_defaults.py`` on
  ResNet50 at batch 1 (2-core machine, three runs) it took 57-104 ms per call against 119-208 ms
  for ``model.predict`` and 234-365 ms for the eager call, with bit-identical outputs.
  ``call_mode="direct"`` (eager call) and ``"predict"`` (``model.predict``) are there for
  comparison; :attr:`Model.options` records the mode.
* :class:`SavedModelModel`: ``tf.saved_model.load`` and one of its signatures
  (``serving_default`` unless ``signature=`` names another).
* :class:`TFLiteModel`: the TFLite interpreter (``ai_edge_litert`` where it is installed, else
  ``tf.lite.Interpreter``) with ``num_threads`` (default: the physical cores) and a dynamic batch
  through ``resize_tensor_input``. TFLite runs on the CPU only.

Loading refuses code stored in a file unless the caller opts in with ``trust_code=True``: Keras
``Lambda`` layers (and ``__lambda__`` functions anywhere in a config) carry marshalled Python
bytecode that runs while the model is rebuilt. pyinfer reads the model's configuration itself
before Keras sees the file, so this holds for ``.h5`` files as for ``.keras`` archives and
whatever the Keras version does; the same reading refuses a config that names a module or
function outside Keras that the caller did not pass in ``custom_objects`` (never imported,
trusted or not), a non-modeling Keras API (``keras.utils.get_file``...: needs ``trust_code``),
and an ``.h5`` file whose datasets read other files. A SavedModel whose graph (resource
initializers run at load, signatures) holds ops that write files or call Python
(:data:`SIDE_EFFECT_OPS`), and a TFLite model naming such ops as Flex ops, need
``trust_code=True`` as well.

TensorFlow is imported only through :func:`~pyinfer.backends.frameworks.import_tensorflow`.

Modules: ``loader`` (:func:`load`), ``common`` (the shared base class and helpers), ``keras`` and
``keras_safety`` (the configuration checks), ``saved_model`` (with its side-effect op scan),
``tflite`` and ``tflite_checks`` (the flatbuffer checks).
"""

from __future__ import annotations

from pyinfer.backends.tensorflow.common import TensorFlowModel, device_scope
from pyinfer.backends.tensorflow.keras import KerasModel
from pyinfer.backends.tensorflow.loader import KNOWN_OPTIONS, load
from pyinfer.backends.tensorflow.saved_model import (
    SIDE_EFFECT_OPS,
    SavedModelModel,
    saved_model_side_effects,
)
from pyinfer.backends.tensorflow.tflite import TFLiteModel, tflite_side_effects

__all__ = [
    "KNOWN_OPTIONS",
    "SIDE_EFFECT_OPS",
    "KerasModel",
    "SavedModelModel",
    "TFLiteModel",
    "TensorFlowModel",
    "device_scope",
    "load",
    "saved_model_side_effects",
    "tflite_side_effects",
]
