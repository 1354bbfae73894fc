from __future__ import annotations

import pytest

from pyinfer import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidArgumentError, ValueError),
        (errors.DeviceError, RuntimeError),
        (errors.CudaUnavailableError, RuntimeError),
        (errors.CudaError, RuntimeError),
        (errors.OutOfMemoryError, MemoryError),
        (errors.BufferInUseError, BufferError),
        (errors.FrameworkNotInstalledError, ImportError),
        (errors.ModelLoadError, RuntimeError),
        (errors.ModelNotFoundError, FileNotFoundError),
        (errors.UnknownFormatError, ValueError),
        (errors.CorruptModelError, ValueError),
        (errors.ArchitectureError, ValueError),
        (errors.UntrustedModelError, PermissionError),
        (errors.InvalidInputError, ValueError),
    ],
)
def test_every_error_is_a_pyinfer_error_and_its_builtin(
    cls: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(cls, errors.PyinferError)
    assert issubclass(cls, builtin)
    with pytest.raises(builtin, match="message"):
        raise cls("message")


def test_cuda_errors_are_device_errors() -> None:
    assert issubclass(errors.CudaUnavailableError, errors.DeviceError)
    assert issubclass(errors.CudaError, errors.DeviceError)
    assert sorted(errors.__all__) == sorted(name for name in dir(errors) if name.endswith("Error"))


def test_load_errors_carry_the_path() -> None:
    for cls in (
        errors.ModelNotFoundError,
        errors.UnknownFormatError,
        errors.CorruptModelError,
        errors.ArchitectureError,
        errors.UntrustedModelError,
    ):
        assert issubclass(cls, errors.ModelLoadError)
        exc = cls("bad model", path="/models/m.onnx")
        assert exc.path == "/models/m.onnx"
        assert str(exc) == "bad model"
    assert errors.ModelLoadError("in memory").path is None
