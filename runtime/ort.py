"""The one place that opens an ONNX Runtime session, and runs it.

Providers are tried in the order TensorRT, CUDA, CPU, keeping only those that can really load
on this machine. ``onnxruntime.get_available_providers()`` lists what the wheel was built with,
not what can run: onnxruntime-gpu on a machine without a GPU lists TensorRT and CUDA, and asking
for CUDA there prints two alarming error lines before falling back to the CPU (see
``shared/reference/MEASURED.md``). So a GPU provider is only asked for where an NVIDIA driver is
present, ONNX Runtime's own logging is quiet while the session opens, and the providers the
session actually got (``session.get_providers()``) are what :meth:`Session.describe` reports, in
one calm line.

On a GPU, :meth:`Session.run` uses I/O binding: the input is copied to the device once and the
outputs are fetched after the run, instead of ONNX Runtime staging every call through the host.

    >>> s = open_session("model.onnx")                          # doctest: +SKIP
    >>> s.describe()                                            # doctest: +SKIP
    'ONNX Runtime 1.31.1 on CPUExecutionProvider (2 threads)'
    >>> scores = s.run({"image": batch})[0]                     # doctest: +SKIP
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from netc.dsl.diagnostics import UserError

# --provider names -> ONNX Runtime provider names, in the order they are preferred.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded: without one no GPU provider can run."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def usable_providers() -> list[str]:
    """Providers worth asking for here, best first (what can plausibly load, not what was built)."""
    import onnxruntime as ort

    built = set(ort.get_available_providers())
    out = []
    if nvidia_driver_present():
        if "TensorrtExecutionProvider" in built and ctypes.util.find_library("nvinfer"):
            out.append("TensorrtExecutionProvider")
        if "CUDAExecutionProvider" in built:
            out.append("CUDAExecutionProvider")
    out.append("CPUExecutionProvider")
    return out


class Session:
    """An ``InferenceSession`` plus what it runs on; :meth:`run` binds I/O on a GPU."""

    def __init__(self, session, threads: int | None):
        self.session = session
        self.providers: list[str] = session.get_providers()
        self.threads = threads
        self.inputs = session.get_inputs()
        self.outputs = session.get_outputs()

    @property
    def provider(self) -> str:
        """The provider that runs the model (the first one the session holds)."""
        return self.providers[0]

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def input_dtype(self) -> np.dtype:
        """float16 for a model compiled with ``--fp16``, else float32."""
        return np.dtype(np.float16 if self.inputs[0].type == "tensor(float16)" else np.float32)

    def describe(self) -> str:
        import onnxruntime as ort

        where = self.provider
        if not self.on_gpu:
            where += f" ({self.threads or os.cpu_count()} threads)"
        return f"ONNX Runtime {ort.__version__} on {where}"

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """All outputs for ``feeds`` (numpy arrays, cast to the model's input type)."""
        feeds = {k: np.ascontiguousarray(v, dtype=self.input_dtype) for k, v in feeds.items()}
        if not self.on_gpu:
            return self.session.run(None, feeds)
        binding = self.bind(feeds)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def bind(self, feeds: Mapping[str, np.ndarray]):
        """An I/O binding with ``feeds`` already on the device (reusable for timing runs)."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(array, dtype=self.input_dtype), "cuda", 0)
            binding.bind_ortvalue_input(name, value)
        for out in self.outputs:
            binding.bind_output(out.name, "cuda")
        return binding


def open_session(model: str | Path | bytes, provider: str | None = None,
                 threads: int | None = None) -> Session:
    """A session on the best provider that loads (or exactly ``provider``: cpu, cuda, tensorrt).

    A forced provider that cannot load here is a UserError, not a silent fall back to the CPU.
    """
    import onnxruntime as ort

    if provider is not None and provider not in PROVIDERS:
        raise UserError(f"--provider must be one of {', '.join(PROVIDERS)}; got {provider!r}")
    wanted = [PROVIDERS[provider]] if provider else usable_providers()
    if wanted[-1] != "CPUExecutionProvider":
        wanted.append("CPUExecutionProvider")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(model).is_file():
        raise UserError(f"no such model file: {model}")
    previous = _quiet_logging()
    try:
        session = ort.InferenceSession(source, options, providers=wanted)
    except Exception as err:  # ONNX Runtime raises its own exception types for a bad file
        what = "the model" if isinstance(model, bytes) else model
        raise UserError(f"ONNX Runtime cannot load {what}: {str(err).splitlines()[0]}") from None
    finally:
        ort.set_default_logger_severity(previous)
    got = Session(session, threads)
    if provider and got.provider != PROVIDERS[provider]:
        raise UserError(f"the {provider} provider does not load on this machine "
                        f"(ONNX Runtime offers {', '.join(session.get_providers())})")
    return got


def _quiet_logging() -> int:
    """Silence ONNX Runtime's logger while a session opens; return the level to restore."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # fatal only: a failed GPU load is expected, not news
    return 2  # ONNX Runtime's default, warnings and above
