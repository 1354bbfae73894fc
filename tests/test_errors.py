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
        (errors.DatasetSourceError, RuntimeError),
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
    classes = sorted(name for name in errors.__all__ if name.endswith("Error"))
    assert classes == sorted(name for name in dir(errors) if name.endswith("Error"))


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


class _FakeTorchOomError(RuntimeError):
    pass


_FakeTorchOomError.__name__ = "OutOfMemoryError"


class _ResourceExhaustedError(Exception):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        _FakeTorchOomError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"
            " out of memory"
        ),
        RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory"),
        _ResourceExhaustedError("OOM when allocating tensor with shape[64,3,224,224]"),
        MemoryError(),
        RuntimeError("std::bad_alloc"),
    ],
)
def test_as_out_of_memory_recognises_every_framework(exc: BaseException) -> None:
    converted = errors.as_out_of_memory(exc)
    assert isinstance(converted, errors.OutOfMemoryError)
    assert converted.__cause__ is exc
    assert type(exc).__name__ in str(converted)


def test_as_out_of_memory_keeps_pyinfer_errors_and_ignores_others() -> None:
    own = errors.OutOfMemoryError("pinned memory")
    assert errors.as_out_of_memory(own) is own
    assert errors.as_out_of_memory(ValueError("shape mismatch")) is None
    assert errors.as_out_of_memory(RuntimeError("memory format is channels_last")) is None


def test_a_onednn_primitive_failure_is_out_of_memory_only_under_an_address_space_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    failure = RuntimeError("could not create a primitive")
    monkeypatch.setattr(
        resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    )
    assert errors.as_out_of_memory(failure) is None  # an unsupported configuration, say
    monkeypatch.setattr(resource, "getrlimit", lambda which: (8 << 30, resource.RLIM_INFINITY))
    converted = errors.as_out_of_memory(failure)
    assert isinstance(converted, errors.OutOfMemoryError)
    assert str(converted) == "RuntimeError: could not create a primitive"
    assert converted.__cause__ is failure
    assert errors.as_out_of_memory(RuntimeError("unrelated failure")) is None


def test_the_address_space_cap_is_read_for_real() -> None:
    import os
    import resource
    import subprocess
    import sys

    script = (
        "import resource, sys\n"
        "from pyinfer import errors\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "e = RuntimeError('could not create a primitive')\n"
        "print(errors.as_out_of_memory(e) is None)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (64 << 30, hard))\n"
        "print(errors.as_out_of_memory(e) is None)\n"
    )
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        pytest.skip("this process already runs under an address-space cap")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.stdout.split() == ["True", "False"]
