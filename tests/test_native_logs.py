"""The frameworks' C++ log lines stay off standard error inside ``native_output_silenced``.

The in-process tests write to file descriptor 2 directly, as native code does; the framework
tests run one child process each (TensorFlow's import lines come once per process) and read
its standard error.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from types import ModuleType

import pytest
from tests._child import run_python

from pyinfer.loading import native_output_silenced

#: Lines TensorFlow (abseil, or the older ``2024-01-01 12:00:00.0: I tensorflow/`` layout) and
#: ONNX Runtime (``[W:onnxruntime:, graph.cc:...]``, after a colour code and a date) write.
NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|(?:\x1b\[[0-9;]*m)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[VIWEF]:onnxruntime)",
    re.MULTILINE,
)


def test_native_writes_are_kept_off_stderr_and_logged(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyinfer.loading.quiet"):
        with native_output_silenced():
            os.write(2, b"native line one\n")
            with native_output_silenced():  # nested: joins the outer scope
                os.write(2, b"native line two\n")
            os.write(2, b"native line three\n")
        os.write(2, b"after the scope\n")
    assert capfd.readouterr().err == "after the scope\n"
    [record] = [r for r in caplog.records if r.name == "pyinfer.loading.quiet"]
    assert record.levelno == logging.DEBUG
    assert "native line one\nnative line two\nnative line three" in record.getMessage()
    assert "before the failure" not in record.getMessage()


def test_disabled_scope_lets_everything_through(capfd: pytest.CaptureFixture[str]) -> None:
    with native_output_silenced(enabled=False):
        os.write(2, b"verbose run\n")
    assert capfd.readouterr().err == "verbose run\n"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_descriptor_is_restored_on_an_error(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    error: type[BaseException],
) -> None:
    before = os.fstat(2)

    def fail_silenced() -> None:
        with native_output_silenced():
            os.write(2, b"said before failing\n")
            raise error("load failed")

    with caplog.at_level(logging.DEBUG, logger="pyinfer.loading.quiet"), pytest.raises(error):
        fail_silenced()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"
    messages = [r.getMessage() for r in caplog.records if r.name == "pyinfer.loading.quiet"]
    assert messages
    assert "before the failure" in messages[0]
    assert "said before failing" in messages[0]


def test_overlapping_scopes_in_threads_restore_once(capfd: pytest.CaptureFixture[str]) -> None:
    inside = threading.Barrier(2)
    leave_first = threading.Event()

    def first() -> None:
        with native_output_silenced():
            inside.wait()
            os.write(2, b"from the first thread\n")
        leave_first.set()

    def second() -> None:
        with native_output_silenced():
            inside.wait()
            leave_first.wait()  # the first scope has ended; this one still holds the redirect
            os.write(2, b"from the second thread\n")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    os.write(2, b"restored\n")
    assert capfd.readouterr().err == "restored\n"


def _onnx_models(onnx: ModuleType, folder: Path) -> tuple[Path, Path]:
    """A model ONNX Runtime warns about (an unused initializer) and one it cannot load."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    unused = numpy_helper.from_array(np.ones((4,), np.float32), "unused_weight")
    paths = []
    for name, op in (("warns.onnx", "Relu"), ("broken.onnx", "NoSuchOperator")):
        graph = helper.make_graph(
            [helper.make_node(op, ["x"], ["y"])], "g", [x], [y], initializer=[unused]
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(folder / name))
        paths.append(folder / name)
    return paths[0], paths[1]


def test_onnxruntime_warnings_only_without_quiet(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    warns, broken = _onnx_models(onnx_module, tmp_path)
    done = run_python(
        f"""
        import logging, sys
        import pyinfer
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        from pyinfer.loading import native_output_silenced
        pyinfer.load_model({str(warns)!r}, quiet_native_logs=True)
        with native_output_silenced():
            logging.getLogger("child").warning("a Python warning inside the scope")
        sys.stderr.write("LOUD FROM HERE\\n")
        sys.stderr.flush()
        pyinfer.load_model({str(warns)!r}, name="loud")
        sys.stderr.write("QUIET AGAIN\\n")
        sys.stderr.flush()
        pyinfer.load_model({str(broken)!r}, quiet_native_logs=True)
        """,
        tmp_path,
        unset=("TF_CPP_MIN_LOG_LEVEL",),
    )
    err = done.stderr
    quiet, _, rest = err.partition("LOUD FROM HERE\n")
    loud, _, failing = rest.partition("QUIET AGAIN\n")
    assert not NATIVE_LINE.search(quiet), quiet
    assert "[W:onnxruntime" not in quiet
    assert "WARNING child: a Python warning inside the scope" in quiet
    assert "[W:onnxruntime" in loud, err  # the control: the same model, not silenced
    assert NATIVE_LINE.search(loud)
    assert not NATIVE_LINE.search(failing), failing
    assert done.returncode != 0
    assert "Traceback" in failing
    assert "NoSuchOperator" in failing


def test_tensorflow_import_and_keras_load_are_quiet(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    done = run_python(
        f"""
        import logging
        import pyinfer
        from pyinfer.loading import native_output_silenced
        from pyinfer.backends.frameworks import import_tensorflow
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        with native_output_silenced():
            import_tensorflow()
            import keras
            inp = keras.Input((4,), name="x")
            keras.Model(inp, keras.layers.Dense(2)(inp)).save({str(tmp_path / "m.keras")!r})
            logging.getLogger("child").warning("a Python warning inside the scope")
        model = pyinfer.load_model({str(tmp_path / "m.keras")!r}, quiet_native_logs=True)
        print("loaded", model.framework)
        raise SystemExit("a Python error after loading")
        """,
        tmp_path,
        unset=("TF_CPP_MIN_LOG_LEVEL",),
    )
    assert "loaded tensorflow" in done.stdout, done.stderr
    assert not NATIVE_LINE.search(done.stderr), done.stderr
    assert "tensorflow/" not in done.stderr
    assert "WARNING child: a Python warning inside the scope" in done.stderr
    assert "a Python error after loading" in done.stderr
    assert done.returncode == 1
