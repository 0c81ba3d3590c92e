"""TensorRT backend (runtime/trt_engine.py).

Without TensorRT: the errors a user meets (no TensorRT, no CUDA binding, missing file), the cuda-python
``(err, value)`` checker, and the engine-contract check run against a fake engine that answers the same
name-based calls as ``ICudaEngine``. With TensorRT (``tensorrt`` marker, needs a GPU too): tiny engines
built here from ONNX graphs written with ``onnx.helper``, compared against numpy and against the ONNX
Runtime backend.
"""

from __future__ import annotations

import enum
import sys

import numpy as np
import pytest

from conftest import one_line
from edgedet.errors import BackendError
from edgedet.runtime.onnx_engine import OUTPUT_NAMES
from edgedet.runtime.trt_engine import (TensorInfo, TrtEngine, check_contract, check_images, cuda_check,
                                        describe_engine, load_cuda)

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
    assert "pip install edgedet[tensorrt]" in msg and "JetPack" in msg


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


def test_contract_dynamic_batch_reads_profile_zero() -> None:
    profile = [(1, H, W, 3), (4, H, W, 3), (8, H, W, 3)]
    layout = check_contract(*describe_engine(FakeEngine(_contract(batch=-1), profile)))
    assert (layout.min_batch, layout.max_batch, layout.dynamic) == (1, 8, True)


@pytest.mark.parametrize("changes, expect", [
    ({"images": (IOMode.INPUT, (1, 3, H, W), DType.FLOAT)}, "input 'images' is float32 [1, 3, 8, 8], not uint8"),
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
def test_contract_violations_areone_line(changes, expect) -> None:
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
    """Every output is a fixed slice of the flattened input, so values, order, dtypes, batch rows and
    the NHWC layout are all checked against :func:`_slice_reference`."""
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


def _slice_reference(images: np.ndarray) -> list[np.ndarray]:
    flat = images.reshape(len(images), -1).astype(np.float32)
    return [flat[:, :1].astype(np.int32), flat[:, : 4 * K].reshape(-1, K, 4), flat[:, :K] / np.float32(255),
            flat[:, :K].astype(np.int32)]


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


def _images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, H, W, 3), dtype=np.uint8)


@pytest.mark.tensorrt
def test_static_batch_engine(tmp_path, need_cuda_binding) -> None:
    import tensorrt as trt

    _slice_graph(tmp_path / "m.onnx", 2)
    with TrtEngine(_build_plan(tmp_path / "m.onnx", tmp_path / "m.plan")) as eng:
        assert (eng.input_shape, eng.input_hw, eng.input_batch, eng.max_batch) == ((H, W), (H, W), 2, 2)
        assert eng.tensorrt_version == trt.__version__
        for batch in (2, 1, 2):  # fewer images than the fixed batch: run the full batch, return B rows
            images = _images(batch, seed=batch)
            out = eng(images)
            for got, want, name in zip(out, _slice_reference(images), OUTPUT_NAMES):
                assert got.dtype == want.dtype and got.shape == want.shape, name
                np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
        with pytest.raises(BackendError, match="takes 1 to 2"):
            eng(_images(3))


@pytest.mark.tensorrt
def test_dynamic_batch_engine_reuses_buffers(tmp_path, need_cuda_binding) -> None:
    _slice_graph(tmp_path / "m.onnx", "batch")
    eng = TrtEngine(_build_plan(tmp_path / "m.onnx", tmp_path / "m.plan", batches=(1, 2, 4)))
    assert (eng.input_batch, eng.max_batch) == (None, 4)
    first = eng(_images(3, seed=1))
    for batch in (3, 1, 4, 2):
        images = _images(batch, seed=batch)
        out = eng(images)
        for got, want, name in zip(out, _slice_reference(images), OUTPUT_NAMES):
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(first[1], _slice_reference(_images(3, seed=1))[1])  # results are copies
    with pytest.raises(BackendError, match="batch of 5 images"):
        eng(_images(5))
    eng.close()
    eng.close()
    with pytest.raises(BackendError, match="closed"):
        eng(_images(1))


@pytest.mark.tensorrt
def test_efficient_nms_engine_matches_the_onnx_backend(tmp_path, need_cuda_binding) -> None:
    """An EfficientNMS_TRT engine (plugins must be registered before deserializing) against the same
    ONNX file run by OnnxEngine, whose numpy plugin reference is what the CPU tests trust."""
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgedet.runtime.onnx_engine import OnnxEngine

    n_cand, n_cls, hw = 32, 3, 16
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))  # noqa: E731
    n = helper.make_node
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    nodes = [
        n("Cast", ["images"], ["f"], to=TensorProto.FLOAT), c("fs", i64(0, -1)), n("Reshape", ["f", "fs"], ["flat"]),
        c("ax", i64(1)), c("a0", i64(0)), c("a1", i64(2 * n_cand)), c("a2", i64(4 * n_cand)),
        c("a3", i64(4 * n_cand + n_cand * n_cls)), c("xy_shape", i64(0, n_cand, 2)),
        c("sc_shape", i64(0, n_cand, n_cls)), c("one_f", np.array(1.0, np.float32)),
        c("div", np.array(255.0, np.float32)),
        n("Slice", ["flat", "a0", "a1", "ax"], ["xy_flat"]), n("Reshape", ["xy_flat", "xy_shape"], ["xy"]),
        n("Slice", ["flat", "a1", "a2", "ax"], ["wh_flat"]), n("Reshape", ["wh_flat", "xy_shape"], ["wh0"]),
        n("Add", ["wh0", "one_f"], ["wh"]), n("Add", ["xy", "wh"], ["xy2"]),
        n("Concat", ["xy", "xy2"], ["cand_boxes"], axis=2),
        n("Slice", ["flat", "a2", "a3", "ax"], ["sc_flat"]), n("Reshape", ["sc_flat", "sc_shape"], ["sc"]),
        n("Div", ["sc", "div"], ["cand_scores"]),
        n("EfficientNMS_TRT", ["cand_boxes", "cand_scores"], list(OUTPUT_NAMES), domain="TRT", plugin_version="1",
          background_class=-1, box_coding=0, score_activation=0, class_agnostic=0, max_output_boxes=K,
          score_threshold=0.3, iou_threshold=0.5),
    ]
    graph = helper.make_graph(nodes, "nms", [
        helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", hw, hw, 3])], [
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, ["batch", 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", K, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", K]),
        helper.make_tensor_value_info("labels", TensorProto.INT32, ["batch", K])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("TRT", 1)],
                              ir_version=IR_VERSION)
    onnx.save(model, str(tmp_path / "nms.onnx"))

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, hw, hw, 3), dtype=np.uint8)
    flat = images.reshape(3, -1)
    for b in range(3):  # distinct scores per image, so the order of detections is not a matter of ties
        flat[b, 4 * n_cand : 4 * n_cand + n_cand * n_cls] = rng.choice(256, n_cand * n_cls, replace=False)

    want = OnnxEngine(tmp_path / "nms.onnx")(images)
    assert want[0].min() > 0, "the test input should leave detections above the threshold"
    with TrtEngine(_build_plan(tmp_path / "nms.onnx", tmp_path / "nms.plan", batches=(1, 2, 4))) as eng:
        got = eng(images)
    np.testing.assert_array_equal(got[0], want[0])
    for b in range(3):
        k = int(want[0][b, 0])
        np.testing.assert_allclose(got[1][b, :k], want[1][b, :k], atol=1e-4)
        np.testing.assert_allclose(got[2][b, :k], want[2][b, :k], atol=1e-6)
        np.testing.assert_array_equal(got[3][b, :k], want[3][b, :k])


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
