"""TensorRT backend (runtime/trt_engine.py).

Without TensorRT: the errors a user meets (no TensorRT, no CUDA binding, missing file), the cuda-python
``(err, value)`` checker, and the engine-contract check run against a fake engine that answers the same
name-based calls as ``ICudaEngine``. With TensorRT (``tensorrt`` marker, needs a GPU too): a foreign plan and an
engine outside the contract are refused (edgedet's real exports are built and compared with ONNX Runtime in
test_tensorrt_exports.py).
"""

from __future__ import annotations

import enum
import sys

import numpy as np
import pytest

from conftest import one_line
from edgedet.errors import BackendError
from edgedet.runtime.onnx_engine import OUTPUT_NAMES
from edgedet.runtime.cuda import cuda_check, load_cuda
from edgedet.runtime.trt_contract import TensorInfo, check_contract, check_images, describe_engine
from edgedet.runtime.trt_engine import TrtEngine

H, W, K = 8, 8, 10
IR_VERSION = 8  # opset 17's; older than what a new onnx writes, so every TensorRT parser and ONNX Runtime read it


# --- without TensorRT -------------------------------------------------------------------------------


def test_missing_tensorrt_names_the_install(tmp_path, monkeypatch) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not a plan")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt now raises ImportError
    with pytest.raises(BackendError) as e:
        TrtEngine(plan)
    msg = one_line(e)
    assert 'pip install ".[tensorrt]"' in msg and "JetPack" in msg


def test_missing_plan_and_onnx_file(tmp_path) -> None:
    with pytest.raises(BackendError, match="engine not found"):
        TrtEngine(tmp_path / "absent.plan")
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(BackendError, match="edgedet build"):
        TrtEngine(onnx_file)


def test_no_cuda_binding_names_the_install(monkeypatch) -> None:
    for mod in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(BackendError) as e:
        load_cuda(0)
    assert "cuda-python" in one_line(e) and "pycuda" in str(e.value)


class _CudaError(enum.IntEnum):  # the shape of cuda-python's cudaError_t
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2


def test_cuda_check_unwraps_err_value_tuples() -> None:
    assert cuda_check((_CudaError.cudaSuccess,)) is None
    assert cuda_check((_CudaError.cudaSuccess, 1234)) == 1234
    assert cuda_check((_CudaError.cudaSuccess, 1, 2)) == (1, 2)
    with pytest.raises(BackendError, match="allocating 64 bytes failed: cudaErrorMemoryAllocation"):
        cuda_check((_CudaError.cudaErrorMemoryAllocation, None), "allocating 64 bytes")


def test_cuda_python_without_a_gpu_is_a_backend_error() -> None:
    """The real cuda-python on a machine without a usable GPU: one line, no traceback from CUDA."""
    cudart = pytest.importorskip("cuda.bindings.runtime")
    err, count = cudart.cudaGetDeviceCount()
    if int(err) == 0 and count > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendError, match="finding a CUDA device failed: cudaError"):
        load_cuda(0)


IOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")  # the names TensorRT's enums carry
DType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 BOOL UINT8 INT64")


class FakeEngine:
    """Answers the name-based calls of ``ICudaEngine`` that :func:`describe_engine` makes."""

    def __init__(self, tensors: dict[str, tuple[IOMode, tuple[int, ...], DType]], profile=None) -> None:
        self.tensors, self.profile = tensors, profile
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i: int) -> str:
        return list(self.tensors)[i]

    def get_tensor_mode(self, name: str) -> IOMode:
        return self.tensors[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][1]

    def get_tensor_dtype(self, name: str) -> DType:
        return self.tensors[name][2]

    def get_tensor_profile_shape(self, name: str, index: int):
        assert index == 0
        return self.profile


def _contract(batch: int = 2, **changes) -> dict:
    i, o = IOMode.INPUT, IOMode.OUTPUT
    t = {"images": (i, (batch, H, W, 3), DType.UINT8),
         # engines list outputs in their own order; the runtime returns OUTPUT_NAMES order
         "labels": (o, (batch, K), DType.INT32), "scores": (o, (batch, K), DType.FLOAT),
         "boxes": (o, (batch, K, 4), DType.FLOAT), "num_dets": (o, (batch, 1), DType.INT32)}
    for name, value in changes.items():
        if value is None:
            del t[name]
        else:
            t[name] = value
    return t


def test_contract_static_batch() -> None:
    layout = check_contract(*describe_engine(FakeEngine(_contract(batch=2))))
    assert (layout.input_name, layout.height, layout.width) == ("images", H, W)
    assert (layout.min_batch, layout.max_batch, layout.dynamic) == (2, 2, False)
    assert {n: layout.outputs[n][0] for n in OUTPUT_NAMES} == {"num_dets": (1,), "boxes": (K, 4), "scores": (K,),
                                                              "labels": (K,)}
    assert [layout.outputs[n][1] for n in OUTPUT_NAMES] == [np.int32, np.float32, np.float32, np.int32]


def test_contract_reads_a_float_nchw_input() -> None:
    """The DeepStream-input export (--input-format float-nchw): the engine is fed float32 NCHW."""
    layout = check_contract(*describe_engine(FakeEngine(_contract(images=(IOMode.INPUT, (2, 3, H, W), DType.FLOAT)))))
    assert (layout.input_format, layout.height, layout.width, layout.max_batch) == ("float-nchw", H, W, 2)
    assert layout.input_shape(1) == (1, 3, H, W) and layout.input_dtype == np.float32


def test_contract_dynamic_batch_reads_profile_zero() -> None:
    profile = [(1, H, W, 3), (4, H, W, 3), (8, H, W, 3)]
    layout = check_contract(*describe_engine(FakeEngine(_contract(batch=-1), profile)))
    assert (layout.min_batch, layout.max_batch, layout.dynamic) == (1, 8, True)


@pytest.mark.parametrize("changes, expect", [
    ({"images": (IOMode.INPUT, (1, 3, H, W), DType.HALF)}, "input 'images' is float16 [1, 3, 8, 8], not uint8"),
    ({"images": (IOMode.INPUT, (1, H, W, 3), DType.FLOAT)}, "input 'images' is float32 [1, 8, 8, 3], not uint8"),
    ({"images": (IOMode.INPUT, (1, -1, -1, 3), DType.UINT8)}, "dynamic height or width"),
    ({"mask": (IOMode.INPUT, (1, H, W), DType.UINT8)}, "has 2 inputs"),
    ({"labels": None}, "not the engine contract's ['num_dets', 'boxes', 'scores', 'labels']"),
    ({"extra": (IOMode.OUTPUT, (1, 5), DType.FLOAT)}, "not the engine contract's"),
    ({"boxes": (IOMode.OUTPUT, (1, K, 5), DType.FLOAT)}, "output 'boxes' is float32 [1, 10, 5], not float32 [B, K, 4]"),
    ({"labels": (IOMode.OUTPUT, (1, K), DType.INT64)}, "output 'labels' is int64"),
    ({"labels": (IOMode.OUTPUT, (1, K + 1), DType.INT32)}, "one static K"),
    ({"scores": (IOMode.OUTPUT, (1, -1), DType.FLOAT)}, "output 'scores'"),
    ({"num_dets": (IOMode.OUTPUT, (2, 1), DType.INT32)}, "output 'num_dets' is int32 [2, 1]"),
])
def test_contract_violations_are_one_line(changes, expect) -> None:
    with pytest.raises(BackendError) as e:
        check_contract(*describe_engine(FakeEngine(_contract(batch=1, **changes))), source="m.plan")
    msg = one_line(e)
    assert msg.startswith("m.plan ") and expect in msg, msg


def test_contract_dynamic_batch_needs_a_profile() -> None:
    tensors = [TensorInfo("images", True, (-1, H, W, 3), "uint8")]
    with pytest.raises(BackendError, match="no optimization profile"):
        check_contract(tensors, None)


def test_check_images() -> None:
    layout = check_contract(*describe_engine(FakeEngine(_contract(batch=-1), [(1, H, W, 3)] * 2 + [(4, H, W, 3)])))
    assert check_images(np.zeros((3, H, W, 3), np.uint8), layout) == 3
    with pytest.raises(BackendError, match=r"uint8 \[B, 8, 8, 3\], got float32"):
        check_images(np.zeros((1, H, W, 3), np.float32), layout)
    with pytest.raises(BackendError, match=r"got uint8 \[1, 3, 8, 8\]"):
        check_images(np.zeros((1, 3, H, W), np.uint8), layout)
    with pytest.raises(BackendError, match="batch of 5 images; this engine takes 1 to 4"):
        check_images(np.zeros((5, H, W, 3), np.uint8), layout)
    with pytest.raises(BackendError, match="got list"):
        check_images([np.zeros((H, W, 3), np.uint8)], layout)


# --- with TensorRT (and a GPU) ----------------------------------------------------------------------


def _slice_graph(path, batch, *, input_dtype=None) -> None:
    """A contract-shaped graph whose outputs are slices of the input; with a float input it is the one
    engine no edgedet export can produce (outside the contract)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))  # noqa: E731
    n = helper.make_node
    nodes = [
        n("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
        c("flat_shape", np.array([0, -1], np.int64)), n("Reshape", ["f", "flat_shape"], ["flat"]),
        c("zero", np.array([0], np.int64)), c("one", np.array([1], np.int64)), c("k", np.array([K], np.int64)),
        c("k4", np.array([4 * K], np.int64)), c("box_shape", np.array([0, K, 4], np.int64)),
        c("div", np.array(255.0, np.float32)),
        n("Slice", ["flat", "zero", "k4", "one"], ["s4k"]), n("Reshape", ["s4k", "box_shape"], ["boxes"]),
        n("Slice", ["flat", "zero", "k", "one"], ["sk"]), n("Div", ["sk", "div"], ["scores"]),
        n("Cast", ["sk"], ["labels"], to=TensorProto.INT32),
        n("Slice", ["flat", "zero", "one", "one"], ["s1"]), n("Cast", ["s1"], ["num_dets"], to=TensorProto.INT32),
    ]
    graph = helper.make_graph(nodes, "slices", [
        helper.make_tensor_value_info("images", input_dtype or TensorProto.UINT8, [batch, H, W, 3])], [
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, K, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, K]),
        helper.make_tensor_value_info("labels", TensorProto.INT32, [batch, K])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION), str(path))


def _build_plan(onnx_path, plan_path, batches=None):
    """ONNX → plan with TensorRT's own builder (each version's default typing); ``batches`` is the
    (min, opt, max) batch of a dynamic input."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(onnx_path.read_bytes())
    assert ok, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if batches:
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        profile.set_shape(name, *[(b, *tuple(network.get_input(0).shape)[1:]) for b in batches])
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "TensorRT could not build the test engine"
    plan_path.write_bytes(bytes(plan))
    return plan_path


@pytest.mark.tensorrt
def test_foreign_or_corrupt_plan_says_rebuild(tmp_path, need_cuda_binding) -> None:
    import tensorrt as trt

    plan = tmp_path / "other.plan"
    plan.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(BackendError) as e:
        TrtEngine(plan)
    msg = one_line(e)
    version = ".".join(trt.__version__.split(".")[:2])
    assert f"this is TensorRT {version}" in msg and "rebuild it on this device with `edgedet build`" in msg


@pytest.mark.tensorrt
def test_real_engine_outside_the_contract(tmp_path, need_cuda_binding) -> None:
    from onnx import TensorProto

    _slice_graph(tmp_path / "f.onnx", 1, input_dtype=TensorProto.FLOAT)
    with pytest.raises(BackendError, match="input 'images' is float32 .* not uint8"):
        TrtEngine(_build_plan(tmp_path / "f.onnx", tmp_path / "f.plan"))
