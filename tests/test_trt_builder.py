"""TensorRT engine builder (export/trt_builder.py), its cache format (calib/trt_cache.py) and ``edgedet build``.

Without TensorRT: the calibration cache bit for bit, cache mismatch detection, the version table, precision
rules, the batch profile, option checks through the CLI, the one line printed where TensorRT is absent, and
the TensorRT API calls the builder makes (float32 calibration uploads, FP32 pinning, creation flags) against
stand-ins. Real plans of edgedet's exports are built in test_tensorrt_exports.py (``tensorrt`` marker).
"""

from __future__ import annotations

import importlib.util
import json
import struct

import types

import numpy as np
import pytest
from conftest import assert_one_line_error, one_line, run_edgedet
from edgedet.calib.trt_cache import (
    CacheHeader,
    check_cache,
    decode_scale,
    encode_scale,
    read_cache,
    version_tag,
    write_cache,
)
from edgedet.export.nms import NMSConfig
from edgedet.export.trt_builder import (
    BuildOptions,
    PrecisionPlan,
    batch_profile,
    graph_precision,
    prepare,
    resolve_precision,
    tensorrt_features,
)

from edgedet.errors import EdgedetError

H, W, K = 8, 8, 10
IR_VERSION = 8
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _contract_graph(path, batch, *, fp16: bool = False, qdq: bool = False, meta: dict | None = None) -> None:
    """uint8 NHWC ``images`` → the four contract outputs, each a fixed slice of the scaled input; ``fp16``
    computes the scores in float16 (FP32 I/O, as edgedet's FP16 export), ``qdq`` adds a Q/DQ pair."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))
    n = helper.make_node
    i64 = lambda *v: np.array(v, np.int64)
    nodes = [n("Cast", ["images"], ["f"], to=TensorProto.FLOAT), c("fs", i64(0, -1)), n("Reshape", ["f", "fs"], ["flat"]),
             c("zero", i64(0)), c("one", i64(1)), c("k", i64(K)), c("k4", i64(4 * K)), c("bs", i64(0, K, 4)),
             n("Slice", ["flat", "zero", "k4", "one"], ["s4k"]), n("Reshape", ["s4k", "bs"], ["boxes"]),
             n("Slice", ["flat", "zero", "k", "one"], ["sk"]),
             n("Cast", ["sk"], ["labels"], to=TensorProto.INT32),
             n("Slice", ["flat", "zero", "one", "one"], ["s1"]), n("Cast", ["s1"], ["num_dets"], to=TensorProto.INT32)]
    if fp16:
        nodes += [n("Cast", ["sk"], ["sk16"], to=TensorProto.FLOAT16), c("div16", np.array(255.0, np.float16)),
                  n("Div", ["sk16", "div16"], ["sc16"]), n("Cast", ["sc16"], ["scores"], to=TensorProto.FLOAT)]
    elif qdq:
        nodes += [c("sc", np.array(1.0, np.float32)), c("zp", np.array(0, np.int8)),
                  n("QuantizeLinear", ["sk", "sc", "zp"], ["q"]), n("DequantizeLinear", ["q", "sc", "zp"], ["dq"]),
                  c("div", np.array(255.0, np.float32)), n("Div", ["dq", "div"], ["scores"])]
    else:
        nodes += [c("div", np.array(255.0, np.float32)), n("Div", ["sk", "div"], ["scores"])]
    graph = helper.make_graph(nodes, "contract", [
        helper.make_tensor_value_info("images", TensorProto.UINT8, [batch, H, W, 3])], [
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, K, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, K]),
        helper.make_tensor_value_info("labels", TensorProto.INT32, [batch, K])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION), str(path))
    if meta is not None:
        path.with_suffix(".json").write_text(json.dumps(meta))


# --- calibration cache ------------------------------------------------------------------------------


def test_version_tags_match_tensorrt_encoding() -> None:
    assert version_tag("10.3.0") == "100300"  # JetPack 6's; the header NVIDIA's TAO caches carry
    assert version_tag("10.12.0.36") == "101200"
    assert version_tag("11.0.0") == "110000"
    assert version_tag("8.5.1.7") == "8501"  # before 10: major*1000 + minor*100 + patch
    assert version_tag("100300") == "100300"


def test_scale_encoding_is_big_endian_float32_bits() -> None:
    assert encode_scale(1.0) == "3f800000"
    assert encode_scale(-2.0) == "c0000000"
    assert decode_scale("3c010a14") == struct.unpack(">f", bytes.fromhex("3c010a14"))[0]
    # NVIDIA's tools print the bits with std::hex, unpadded: 1-8 digits name the same float32 bits
    assert np.float32(decode_scale("3c010a1")).view(np.uint32) == 0x03C010A1
    assert decode_scale("0") == 0.0 and np.float32(decode_scale("1")).view(np.uint32) == 1
    for bad in ("", "3c010a141", "0x3c01", "zz"):
        with pytest.raises(ValueError):
            decode_scale(bad)
    with pytest.raises(EdgedetError):
        encode_scale(float("nan"))


def test_cache_round_trip_is_bit_exact(tmp_path) -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(1e-6, 10, 50).astype(np.float32)
    names = ["images", "/backbone/conv1/Conv_output_0", "(Unnamed Layer* 3) [Convolution]_output", "a: b"]
    names += [f"t{i}" for i in range(len(values) - len(names))]
    scales = {n: float(v) for n, v in zip(names, values)}
    path = write_cache(tmp_path / "m.calib", "10.3.0", "EntropyCalibration2", scales)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2" and text.endswith("\n")
    assert lines[2] == f"/backbone/conv1/Conv_output_0: {struct.pack('>f', values[1]).hex()}"
    header, back = read_cache(path)
    assert header == CacheHeader("100300", "EntropyCalibration2") and str(header) == lines[0]
    assert list(back) == names  # order kept, names with ': ' split on the last one
    got = np.array(list(back.values()), np.float32)
    assert got.view(np.uint32).tolist() == values.view(np.uint32).tolist()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left


def test_reads_a_cache_written_by_tensorrt() -> None:
    from edgedet.calib.trt_cache import parse_cache

    header, scales = parse_cache("TRT-8501-EntropyCalibration2\nimages: 3c010a14\nout: 3d8f2c51\nsmall: 7f2c51\n")
    assert str(header) == "TRT-8501-EntropyCalibration2" and set(scales) == {"images", "out", "small"}
    assert np.float32(scales["images"]).view(np.uint32) == 0x3C010A14
    assert np.float32(scales["small"]).view(np.uint32) == 0x007F2C51  # unpadded hex, as trtexec writes it


@pytest.mark.parametrize("text, expect", [
    ("", "not a TensorRT calibration cache"),
    ("images: 3c010a14\n", "not a TensorRT calibration cache"),
    ("TRT-100300-EntropyCalibration2\nimages 3c010a14\n", "line 2"),
    ("TRT-100300-EntropyCalibration2\nimages: zz010a14\n", "line 2"),
])
def test_malformed_caches_are_one_line(tmp_path, text, expect) -> None:
    (tmp_path / "c").write_text(text)
    with pytest.raises(EdgedetError, match=expect) as e:
        read_cache(tmp_path / "c")
    one_line(e)


def test_check_cache_detects_foreign_caches(tmp_path) -> None:
    net = ["images", "conv_out", "scores"]
    path = write_cache(tmp_path / "m.calib", "10.3.0", "EntropyCalibration2", {"images": 0.5, "conv_out": 0.25})
    header, scales = check_cache(path, expected_algorithm="entropy", trt_version="10.3.0", tensor_names=net)
    assert header.algorithm == "EntropyCalibration2" and scales == {"images": 0.5, "conv_out": 0.25}
    with pytest.raises(EdgedetError, match="for TensorRT 100300.*this is TensorRT 10.12.0") as e:
        check_cache(path, expected_algorithm="entropy", trt_version="10.12.0", tensor_names=net)
    one_line(e)
    with pytest.raises(EdgedetError, match="made by EntropyCalibration2, not MinMaxCalibration"):
        check_cache(path, expected_algorithm="minmax", trt_version="10.3.0", tensor_names=net)
    with pytest.raises(EdgedetError, match="another model"):
        check_cache(path, expected_algorithm="entropy", trt_version="10.3.0", tensor_names=["images", "other"])
    empty = write_cache(tmp_path / "e.calib", "10.3.0", "EntropyCalibration2", {})
    with pytest.raises(EdgedetError, match="no scales"):
        check_cache(empty, expected_algorithm="entropy", trt_version="10.3.0", tensor_names=net)
    with pytest.raises(EdgedetError, match="cannot read calibration cache"):
        read_cache(tmp_path / "absent.calib")


# --- versions, precision, profile -------------------------------------------------------------------


def test_tensorrt_feature_table() -> None:
    assert tensorrt_features("10.3.0") == (10, 3, 0, False, True, False, False)
    assert not tensorrt_features("10.11.0").strongly_typed
    # 10.12: EfficientNMS and weak typing deprecated, so edgedet builds strongly typed (opting in)
    assert tensorrt_features("10.12.0") == (10, 12, 0, False, True, True, True)
    assert tensorrt_features("10.12.0.36").strongly_typed
    f11 = tensorrt_features("11.0.0")
    assert f11 == (11, 0, 0, True, False, True, True) and f11.strongly_typed_only and f11.strongly_typed
    for old in ("8.6.2", "10.2.0"):  # JetPack 6.0's TensorRT; a desktop 10.x older than every parser table
        with pytest.raises(EdgedetError, match=r"too old.*10\.3.*JetPack 6\.1") as e:
            tensorrt_features(old)
        one_line(e)


def test_precision_rules() -> None:
    t10, t11 = tensorrt_features("10.3.0"), tensorrt_features("11.0.0")
    t1012 = tensorrt_features("10.12.0")
    p = resolve_precision(t1012, "fp16", fp16=True, int8=False)
    assert (p.precision, p.strongly_typed, p.fp16_flag, p.int8_flag, p.calibrate) == ("fp16", True, False, False, False)
    assert resolve_precision(t1012, "int8", fp16=False, int8=True) == PrecisionPlan("int8", strongly_typed=True)
    with pytest.raises(EdgedetError, match=r"10\.12 deprecates weak typing.*export --fp16") as e:
        resolve_precision(t1012, "fp32", fp16=True, int8=False)
    one_line(e)
    with pytest.raises(EdgedetError, match="10.12 deprecates INT8 calibrators.*Q/DQ"):
        resolve_precision(t1012, "fp32", fp16=False, int8=True)
    p = resolve_precision(t11, "fp16", fp16=True, int8=False)
    assert (p.precision, p.strongly_typed, p.fp16_flag, p.int8_flag, p.calibrate) == ("fp16", True, False, False, False)
    assert resolve_precision(t11, "fp32", fp16=False, int8=False).precision == "fp32"
    assert resolve_precision(t11, "int8", fp16=False, int8=True).precision == "int8"
    with pytest.raises(EdgedetError, match=r"export --fp16.*\.fp16\.onnx") as e:
        resolve_precision(t11, "fp32", fp16=True, int8=False)
    one_line(e)
    with pytest.raises(EdgedetError, match="Q/DQ"):
        resolve_precision(t11, "fp32", fp16=False, int8=True)
    p = resolve_precision(t10, "fp32", fp16=True, int8=False)
    assert (p.precision, p.strongly_typed, p.fp16_flag, p.int8_flag) == ("fp16", False, True, False)
    p = resolve_precision(t10, "fp32", fp16=False, int8=True)
    assert (p.precision, p.int8_flag, p.calibrate) == ("int8", True, True)
    p = resolve_precision(t10, "int8", fp16=False, int8=False)  # Q/DQ graph: explicit quantization, no calibrator
    assert (p.precision, p.int8_flag, p.calibrate) == ("int8", True, False)
    assert resolve_precision(t10, "fp32", fp16=False, int8=False) == PrecisionPlan("fp32", strongly_typed=False)
    assert resolve_precision(t10, "fp16", fp16=False, int8=False).fp16_flag  # an FP16 graph keeps FP16 kernels


def test_graph_precision(tmp_path) -> None:
    import onnx

    for kind, want in (({}, "fp32"), ({"fp16": True}, "fp16"), ({"qdq": True}, "int8")):
        _contract_graph(tmp_path / "m.onnx", 1, **kind)
        assert graph_precision(onnx.load(str(tmp_path / "m.onnx"))) == want


def test_batch_profile_dynamic() -> None:
    shape = ("batch", H, W, 3)
    assert batch_profile(shape, None, None, None, {"batch": {"dynamic": True, "max": 8}}) == (
        (1, H, W, 3), (8, H, W, 3), (8, H, W, 3))
    assert batch_profile((-1, H, W, 3), 2, 4, 16, {"batch": {"max": 8}}) == ((2, H, W, 3), (4, H, W, 3), (16, H, W, 3))
    assert batch_profile((0, H, W, 3), None, None, None, None) == ((1, H, W, 3),) * 3
    assert batch_profile((-1, H, W, 3), None, 3, None, None)[2] == (3, H, W, 3)
    # the DeepStream export (--input-format float-nchw) keeps its NCHW tail
    assert batch_profile((-1, 3, H, W), None, None, None, {"batch": {"max": 4}}) == ((1, 3, H, W), (4, 3, H, W),
                                                                                     (4, 3, H, W))
    for lo, opt, hi in ((4, None, 2), (1, 5, 4), (3, 2, 4)):
        with pytest.raises(EdgedetError, match="min <= opt <= max") as e:
            batch_profile(shape, lo, opt, hi, None)
        one_line(e)
    with pytest.raises(EdgedetError, match="at least 1"):
        batch_profile(shape, 0, None, 4, None)


def test_batch_profile_fixed_and_bad_inputs() -> None:
    assert batch_profile((2, H, W, 3), None, None, None, {"batch": {"size": 2}}) == ((2, H, W, 3),) * 3
    assert batch_profile((2, H, W, 3), 2, 2, 2, None) == ((2, H, W, 3),) * 3
    with pytest.raises(EdgedetError, match="fixed batch of 2, so --max-batch 8") as e:
        batch_profile((2, H, W, 3), None, None, 8, None)
    assert "--dynamic-batch" in one_line(e)
    with pytest.raises(EdgedetError, match="engine contract"):
        batch_profile((1, 4, H, W), None, None, None, None)  # neither uint8 NHWC nor float NCHW
    with pytest.raises(EdgedetError, match="engine contract"):
        batch_profile((1, -1, -1, 3), None, None, None, None)


def test_prepare_checks_without_tensorrt(tmp_path) -> None:
    onnx_path = tmp_path / "m.onnx"
    _contract_graph(onnx_path, "batch", meta={"batch": {"dynamic": True, "max": 4}, "precision": "fp32"})
    prep = prepare(BuildOptions(onnx_path))
    assert (prep.graph, prep.input_name, prep.profile[2][0]) == ("fp32", "images", 4)
    assert BuildOptions(onnx_path).plan_path == tmp_path / "m.plan"
    assert BuildOptions(tmp_path / "m.fp16.onnx").plan_path == tmp_path / "m.fp16.plan"
    (tmp_path / "m.plan").write_bytes(b"old")
    with pytest.raises(EdgedetError, match="--force"):
        prepare(BuildOptions(onnx_path))
    prepare(BuildOptions(onnx_path, force=True))
    with pytest.raises(EdgedetError, match="--calib-images"):
        prepare(BuildOptions(onnx_path, force=True, int8=True))
    # a calibration cache beside the ONNX is enough to ask for INT8 (it is checked once TensorRT parsed the net)
    write_cache(tmp_path / "m.calib", "10.3.0", "EntropyCalibration2", {"images": 1.0})
    assert prepare(BuildOptions(onnx_path, force=True, int8=True)).graph == "fp32"
    _contract_graph(tmp_path / "q.onnx", 1, qdq=True)
    assert prepare(BuildOptions(tmp_path / "q.onnx", int8=True)).graph == "int8"
    with pytest.raises(EdgedetError, match="not found"):
        prepare(BuildOptions(tmp_path / "absent.onnx"))
    with pytest.raises(EdgedetError, match="overwrite its ONNX"):
        prepare(BuildOptions(onnx_path, out=onnx_path))
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(EdgedetError, match="cannot read"):
        prepare(BuildOptions(tmp_path / "bad.onnx"))


def test_full_batches_regroups_any_stream() -> None:
    from edgedet.calib.trt_calibrator import _full_batches

    stream = [np.full((3, H, W, 3), i, np.uint8) for i in range(3)]  # 9 images → two batches of 4
    out = list(_full_batches(iter(stream), 4, (4, H, W, 3)))
    assert [b.shape for b in out] == [(4, H, W, 3)] * 2 and out[0].flags.c_contiguous
    assert out[1][:, 0, 0, 0].tolist() == [1, 1, 2, 2]
    with pytest.raises(EdgedetError, match="not uint8"):
        list(_full_batches([np.zeros((2, H, W, 3), np.float32)], 2, (2, H, W, 3)))


# --- CLI --------------------------------------------------------------------------------------------


def test_cli_option_errors_are_one_line(tmp_path) -> None:
    onnx_path = tmp_path / "m.onnx"
    _contract_graph(onnx_path, "batch", meta={"batch": {"dynamic": True, "max": 4}})
    assert_one_line_error(run_edgedet("build", "--engine", str(onnx_path), "--min-batch", "4", "--max-batch", "2"),
                           "min <= opt <= max")
    assert_one_line_error(run_edgedet("build", "--engine", str(onnx_path), "--int8"), "--calib-images")
    assert_one_line_error(run_edgedet("build", "--engine", str(tmp_path / "absent.onnx")), "not found")
    _contract_graph(tmp_path / "f.onnx", 1)
    assert_one_line_error(run_edgedet("build", "--engine", str(tmp_path / "f.onnx"), "--max-batch", "4"), "fixed batch of 1")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_cli_without_tensorrt_names_the_target_device(tmp_path) -> None:
    _contract_graph(tmp_path / "m.onnx", 1)
    r = run_edgedet("build", "--engine", str(tmp_path / "m.onnx"))
    assert_one_line_error(r, "TensorRT is not installed here", "run edgedet build on the target device",
                           'pip install ".[tensorrt]" in edgedet\'s clone, or JetPack')
    assert not (tmp_path / "m.plan").exists()


# --- TensorRT API use, against stand-ins that record what the builder asks of TensorRT ------------------


class _FakeCuda:
    """The runtime's CUDA helper interface, recording allocations and the bytes uploaded."""

    def __init__(self) -> None:
        self.allocs: dict[int, int] = {}
        self.uploads: list[bytes] = []

    def malloc(self, nbytes):
        self.allocs[len(self.allocs) + 1] = nbytes
        return len(self.allocs)

    def malloc_host(self, nbytes):
        return np.zeros(nbytes, np.uint8)

    def memcpy_htod_async(self, dst, src, stream):
        assert src.nbytes == self.allocs[dst]
        self.uploads.append(src.tobytes())

    def stream_create(self):
        return 7

    def stream_sync(self, stream): ...
    def free(self, ptr): ...
    def free_host(self, buf): ...
    def stream_destroy(self, stream): ...


def test_calibrator_uploads_float32_not_bytes(tmp_path) -> None:
    """TensorRT reads calibration data for the uint8 ``images`` input as float32: 4 bytes per element."""
    import types

    from edgedet.calib.trt_calibrator import make_calibrator

    trt = types.SimpleNamespace(IInt8EntropyCalibrator2=type("Entropy", (), {"__init__": lambda self: None}),
                                IInt8MinMaxCalibrator=object)
    cuda = _FakeCuda()
    batch = np.random.default_rng(0).integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    cal = make_calibrator(trt, "entropy", [batch], 2, (H, W), tmp_path / "c.calib", cuda)
    assert list(cuda.allocs.values()) == [batch.size * 4]
    assert cal.get_batch(["images"]) == [1] and cal.get_batch(["images"]) is None
    sent = np.frombuffer(cuda.uploads[0], np.float32)
    np.testing.assert_array_equal(sent, batch.reshape(-1).astype(np.float32))
    cal.free()
    # a float-nchw export (DeepStream's input) is calibrated on the same images in its own layout
    cuda = _FakeCuda()
    cal = make_calibrator(trt, "entropy", [batch], 2, (H, W), tmp_path / "c.calib", cuda, "float-nchw")
    assert cal.get_batch(["images"]) == [1]
    sent = np.frombuffer(cuda.uploads[0], np.float32)
    np.testing.assert_array_equal(sent, batch.transpose(0, 3, 1, 2).reshape(-1).astype(np.float32))
    cal.free()


class _Tensor:
    def __init__(self, dtype) -> None:
        self.dtype = dtype


class _Layer:
    def __init__(self, name, *dtypes, inputs=()) -> None:
        self.name, self._outs, self.precision, self.output_types = name, [_Tensor(d) for d in dtypes], None, {}
        self._ins = [_Tensor(d) for d in inputs]
        self.num_outputs, self.num_inputs = len(dtypes), len(self._ins)

    def get_output(self, j):
        return self._outs[j]

    def get_input(self, k):
        return self._ins[k]

    def set_output_type(self, j, dtype):
        self.output_types[j] = dtype


def test_nms_tail_layers_are_pinned_to_fp32_on_weakly_typed_builds() -> None:
    import types

    from edgedet.export.trt_builder import pin_fp32_layers

    trt = types.SimpleNamespace(float32="f32", float16="f16", int32="i32", bool="b")
    layers = [_Layer("/backbone/Conv", "f16", inputs=["f16"]), _Layer("nms/class_scores", "f32", inputs=["f32"]),
              _Layer("nms/top_labels_i", "i32", inputs=["i32"]), _Layer("nms/valid", "b", inputs=["i32"]),
              _Layer("nms/boxes", "f16", inputs=["f16"]),
              _Layer("nms/TopK", "f32", "i32", inputs=["f32", "i32"]),  # float values in, INT32 indices out
              _Layer("nms/NonMaxSuppression", "i32", inputs=["f32", "f32", "i32"])]  # float boxes/scores, INT32 out
    network = types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    assert pin_fp32_layers(trt, network) == 4
    assert [l.precision for l in layers] == [None, "f32", None, None, "f32", "f32", "f32"]
    assert layers[4].output_types == {0: "f32"} and layers[0].output_types == {}
    assert layers[5].output_types == {0: "f32"} and layers[6].output_types == {}  # types on float outputs only


def test_nms_tail_nodes_carry_the_prefix_the_builder_pins(tmp_path) -> None:
    from edgedet.export.nms import NMS_PREFIX
    from edgedet.export.onnx_export import ExportOptions, export_model

    import onnx

    res = export_model(ExportOptions(model="ssdlite_tiny", out_dir=str(tmp_path)))
    model = onnx.load(str(res.artifacts["fp32"]))
    nms = next(n for n in model.graph.node if n.op_type == "NonMaxSuppression")
    producers = {o: n for n in model.graph.node for o in n.output}
    assert nms.name.startswith(NMS_PREFIX)
    for out in ("num_dets", "boxes", "scores", "labels"):
        assert producers[out].name.startswith(NMS_PREFIX), out


def test_no_strongly_typed_flag_on_tensorrt_11() -> None:
    import types

    from edgedet.export.trt_builder import creation_flags, dla_support

    trt = types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1))
    assert creation_flags(trt, tensorrt_features("10.3.0"), True) == 1 << 1
    assert creation_flags(trt, tensorrt_features("10.3.0"), False) == 0
    assert creation_flags(trt, tensorrt_features("11.0.0"), True) == 0  # always strongly typed, flag ignored
    assert "no DLA" in dla_support("11.2.0") and "AGX Orin only" in dla_support("11.4.1")
    assert "JetPack 6" in dla_support("10.3.0")
    assert tensorrt_features("10.12.0").efficient_nms_deprecated and not tensorrt_features("10.3.0").efficient_nms_deprecated


def test_doctor_names_the_tensorrt_path_and_dla() -> None:
    from edgedet.doctor import tensorrt_summary

    jp6 = tensorrt_summary("10.3.0", jetson=True)
    assert "weakly typed" in jp6["TensorRT build"] and "trt10.3" in jp6["TensorRT build"]
    assert "Orin NX" in jp6["DLA"] and "not a Jetson" not in jp6["DLA"]
    t11 = tensorrt_summary("11.1.0", jetson=False)
    assert "strongly typed" in t11["TensorRT build"] and "deprecated" in t11["TensorRT build"]
    assert t11["DLA"].startswith("TensorRT 11.1.0: no DLA") and "not a Jetson" in t11["DLA"]


# --- the NMS tail keeps FP32 on real exports: TensorRT 10.3 (weak typing, pinned), 10.12 and 11 (strongly typed) ---
_TRT_TYPES = {"FLOAT": "f32", "FLOAT16": "f16", "INT32": "i32", "INT64": "i64", "BOOL": "b", "INT8": "i8", "UINT8": "u8"}


class _Net:
    """A stand-in INetworkDefinition made of a real export's ONNX nodes: onnx-tensorrt names each layer after its
    node, and its tensors carry the ONNX types."""

    def __init__(self, path) -> None:
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        g = model.graph
        dtype = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
        dtype |= {t.name: t.data_type for t in g.initializer}
        name = onnx.TensorProto.DataType.Name

        def tensor(n):
            return _Tensor(_TRT_TYPES.get(name(dtype[n]), "other")) if n and n in dtype else None

        self.layers = []
        for node in g.node:
            layer = _Layer(node.name)
            layer.op = node.op_type
            layer._outs, layer.num_outputs = [tensor(o) for o in node.output], len(node.output)
            layer._ins, layer.num_inputs = [tensor(i) for i in node.input], len(node.input)
            layer.get_input = lambda k, layer=layer: layer._ins[k]
            self.layers.append(layer)
        self.num_layers = len(self.layers)
        shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
        self._input = types.SimpleNamespace(name=g.input[0].name, shape=shape)

    def get_layer(self, i):
        return self.layers[i]

    def get_input(self, i):
        return self._input


class _Config:
    def __init__(self) -> None:
        self.flags: set[str] = set()

    def set_flag(self, flag) -> None:
        self.flags.add(flag)


_FAKE_TRT = types.SimpleNamespace(
    float32="f32", float16="f16",
    BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8", OBEY_PRECISION_CONSTRAINTS="OBEY"),
    NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1))


@pytest.fixture(scope="module")
def plugin_fp16_export(tmp_path_factory):
    from edgedet.export.onnx_export import ExportOptions, export_model

    return export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("efficient"), fp16=True,
                                      out_dir=str(tmp_path_factory.mktemp("plugin")))).artifacts["fp16"]


@pytest.mark.parametrize("version", ["10.3.0", "10.11.0", "10.12.0", "11.4.0"])
@pytest.mark.parametrize("artifact", ["fp16", "int8", "plugin_fp16"])
def test_nms_tail_of_real_exports_stays_fp32(fixture_exports, plugin_fp16_export, version, artifact) -> None:
    """Every ``nms/`` layer that computes on floats (TopK, the NMS layer, the EfficientNMS plugin included) is
    pinned to FP32 where TensorRT is weakly typed, and the network is strongly typed (no precision flag, no
    layer precision) from 10.12 on."""
    from edgedet.export.nms import NMS_PREFIX
    from edgedet.export.trt_builder import create_engine, creation_flags, graph_precision

    import onnx

    path = plugin_fp16_export if artifact == "plugin_fp16" else fixture_exports[artifact]
    features = tensorrt_features(version)
    plan = resolve_precision(features, graph_precision(onnx.load(str(path))), fp16=artifact != "int8", int8=False)
    net, config = _Net(path), _Config()
    builder = types.SimpleNamespace(create_builder_config=lambda: config,
                                    build_serialized_network=lambda network, cfg: b"plan")
    assert create_engine(_FAKE_TRT, builder, net, plan, ((1,), (1,), (1,))) == b"plan"
    tail = [layer for layer in net.layers if layer.name.startswith(NMS_PREFIX)]
    computing = [layer for layer in tail if any(t is not None and t.dtype in ("f32", "f16")
                                                for t in (*layer._ins, *layer._outs))]
    ops = {layer.op for layer in computing}
    assert ({"EfficientNMS_TRT"} if artifact == "plugin_fp16" else {"TopK", "NonMaxSuppression"}) <= ops, ops
    if features.strongly_typed:
        assert plan.strongly_typed and not config.flags & {"FP16", "INT8", "OBEY"}
        assert all(layer.precision is None and not layer.output_types for layer in net.layers)
        assert creation_flags(_FAKE_TRT, features, plan.strongly_typed) == (0 if features.major >= 11 else 1 << 1)
    else:
        assert "OBEY" in config.flags and ("FP16" in config.flags)
        unpinned = [(layer.name, layer.op) for layer in computing if layer.precision != "f32"]
        assert not unpinned, unpinned
        for layer in computing:  # output types on float outputs only
            floats = {j for j, t in enumerate(layer._outs) if t is not None and t.dtype in ("f32", "f16")}
            assert set(layer.output_types) == floats and set(layer.output_types.values()) <= {"f32"}, layer.name
        assert all(layer.precision is None for layer in net.layers if not layer.name.startswith(NMS_PREFIX))
