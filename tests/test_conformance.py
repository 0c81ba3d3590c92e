"""``edgedet check``: TensorRT's parser rules on real exports, seeded violations caught with the node named,
the operator table judged per TensorRT version, and export/build refusing what fails.

The graphs under test are edgedet's own exports (the tiny SSD with random weights, FP32/FP16/INT8, both NMS
flavours); each seeded violation is one edit of such an export, so the check is tested on what users ship.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_one_line_error, one_line, run_edgedet
from edgedet.errors import EdgedetError
from edgedet.export.conformance import (
    TARGETS,
    TRT_TARGETS,
    check_model,
    default_target,
    operator_table,
    table_for_target,
    target_for_tensorrt,
)
from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model


@pytest.fixture(scope="module")
def exports(synth, tmp_path_factory):
    """ssdlite_tiny (random weights) as users export it: onnx flavour FP32/FP16/INT8, efficient flavour FP32."""
    out = tmp_path_factory.mktemp("conformance")
    onnx_res = export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("onnx"), fp16=True, int8=True,
                                          calib_images=str(synth.images_dir), calib_count=8, out_dir=str(out)))
    eff = export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("efficient"), out_dir=str(out), name="eff"))
    return {**{f"onnx-{p}": path for p, path in onnx_res.artifacts.items()}, "efficient-fp32": eff.artifacts["fp32"]}


def _load(exports, key) -> onnx.ModelProto:
    return onnx.load(str(exports[key]))


def _errors(model, target="trt10.3", rule=None):
    rep = check_model(model, target)
    return [f for f in rep.errors if rule is None or f.rule == rule]


@pytest.mark.parametrize("key", ["onnx-fp32", "onnx-fp16", "onnx-int8", "efficient-fp32"])
def test_every_export_passes_every_tensorrt_target(exports, key):
    model = _load(exports, key)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["edgedet"])
    assert meta["target"] == "tensorrt"
    assert set(meta["check"]) == set(TRT_TARGETS) and all(r["passed"] for r in meta["check"].values())
    for target in TRT_TARGETS:
        rep = check_model(model, target)
        assert rep.nodes > 100 and rep.passed, [str(f) for f in rep.errors]


def test_input_is_cast_before_anything_reads_it(exports):
    """The uint8 input's only reader is a Cast to float (TensorRT rejects uint8 intermediate tensors)."""
    for key in ("onnx-fp32", "onnx-fp16", "onnx-int8"):
        model = _load(exports, key)
        readers = [n for n in model.graph.node if "images" in n.input]
        assert [n.op_type for n in readers] == ["Cast"], key
        assert readers[0].attribute[0].i == TensorProto.FLOAT


@pytest.mark.slow
def test_fasterrcnn_export_passes_too(tmp_path):
    res = export_model(ExportOptions(model="fasterrcnn_mobilenet_v3_large_320_fpn", imgsz=(160, 160), out_dir=str(tmp_path)))
    model = onnx.load(str(res.artifacts["fp32"]))
    assert [n.op_type for n in model.graph.node if "images" in n.input] == ["Cast"]
    assert any(n.op_type == "RoiAlign" for n in model.graph.node)
    for target in TRT_TARGETS:
        assert check_model(model, target).passed


# --- seeded violations, each one edit of a real export ------------------------------------------------------


def test_uint8_transpose_before_the_cast_is_caught(exports):
    """What every export did before the cast moved first: Transpose(uint8) → Cast."""
    model = _load(exports, "onnx-fp32")
    cast = next(n for n in model.graph.node if "images" in n.input)
    cast.input[0] = "images_nchw"
    model.graph.node.insert(0, helper.make_node("Transpose", ["images"], ["images_nchw"], name="/permute_first",
                                                perm=[0, 3, 1, 2]))
    found = _errors(model, rule="uint8")
    assert {f.node for f in found} == {"/permute_first", cast.name}
    assert any("intermediate" in f.message for f in found)


def test_int_attribute_on_the_plugin_is_caught(exports):
    model = _load(exports, "efficient-fp32")
    node = next(n for n in model.graph.node if n.op_type == "EfficientNMS_TRT")
    attr = next(a for a in node.attribute if a.name == "iou_threshold")
    node.attribute.remove(attr)
    node.attribute.append(helper.make_attribute("iou_threshold", 1))  # what NMSConfig(iou_thresh=1) used to write
    found = _errors(model, rule="plugin")
    assert len(found) == 1 and found[0].node == node.name and "FLOAT" in found[0].message


def test_plugin_attributes_are_floats_even_from_ints(tmp_path):
    """NMSConfig(iou_thresh=1) through the Python API: still a FLOAT attribute, and the graph passes."""
    res = export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("efficient", score_thresh=1 / 4, iou_thresh=1),
                                     out_dir=str(tmp_path)))
    model = onnx.load(str(res.artifacts["fp32"]))
    node = next(n for n in model.graph.node if n.op_type == "EfficientNMS_TRT")
    types = {a.name: a.type for a in node.attribute}
    assert types["iou_threshold"] == types["score_threshold"] == onnx.AttributeProto.FLOAT
    assert types["max_output_boxes"] == onnx.AttributeProto.INT
    assert check_model(model, "trt10.3").passed


def test_plugin_score_threshold_below_the_dense_path_limit(exports):
    with pytest.raises(EdgedetError, match="0.007"):
        NMSConfig("efficient", score_thresh=0.005).validate(1000)
    NMSConfig("onnx", score_thresh=0.005).validate(1000)  # the standard op has no such path
    model = _load(exports, "efficient-fp32")
    node = next(n for n in model.graph.node if n.op_type == "EfficientNMS_TRT")
    next(a for a in node.attribute if a.name == "score_threshold").f = 0.001
    assert [f.rule for f in _errors(model)] == ["plugin"]


def test_plugin_is_deprecated_from_10_12_and_absent_on_cpu(exports):
    model = _load(exports, "efficient-fp32")
    assert not check_model(model, "trt10.3").warnings and not check_model(model, "trt10.11").warnings
    for target in ("trt10.12", "trt10", "trt11"):
        rep = check_model(model, target)
        assert rep.passed and any("deprecated since TensorRT 10.12" in f.message for f in rep.warnings)
    assert [f.rule for f in check_model(model, "cpu").errors] == ["plugin"]
    assert check_model(_load(exports, "onnx-fp32"), "cpu").passed


def _const_of(model, name) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == "Constant" and n.output[0] == name)


def test_topk_above_3840_is_caught(exports):
    model = _load(exports, "onnx-fp32")
    topk = next(n for n in model.graph.node if n.op_type == "TopK" and n.name.startswith("nms/"))
    const = _const_of(model, topk.input[1])
    const.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([4000], np.int64), topk.input[1]))
    found = _errors(model, rule="topk")
    assert [f.node for f in found] == [topk.name] and "4000" in found[0].message


def test_non_zero_zero_point_and_activation_per_channel_are_caught(exports):
    model = _load(exports, "onnx-int8")
    inits = {t.name: t for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    zp = numpy_helper.to_array(inits[q.input[2]]).copy()
    zp[...] = 3
    inits[q.input[2]].CopyFrom(numpy_helper.from_array(zp, q.input[2]))
    found = _errors(model, rule="qdq")
    assert q.name in {f.node for f in found} and any("non-zero zero point" in f.message for f in found)

    model = _load(exports, "onnx-int8")
    inits = {t.name: t for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    inits[q.input[1]].CopyFrom(numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), q.input[1]))
    assert any(f.node == q.name and "per-channel" in f.message for f in _errors(model, rule="qdq"))


def _with_node(model, node: onnx.NodeProto, *, domain_opset=None) -> onnx.ModelProto:
    """``model`` plus one extra node reading the first candidate score tensor (its output unused)."""
    model.graph.node.append(node)
    if domain_opset:
        model.opset_import.append(helper.make_opsetid(*domain_opset))
    return model


def test_an_op_edgedet_never_emits_is_judged_per_tensorrt_version(exports):
    """HannWindow: absent from the 10.3 parser, supported from the latest 10.x on (operators.md of each)."""
    base = _load(exports, "onnx-fp32")
    win = numpy_helper.from_array(np.array(16, np.int64), "win_size")
    base.graph.initializer.append(win)
    model = _with_node(base, helper.make_node("HannWindow", ["win_size"], ["window"], name="/extra/hann"))
    assert [(f.rule, f.node) for f in _errors(model, "trt10.3")] == [("operator", "/extra/hann")]
    assert not _errors(model, "trt10") and not _errors(model, "trt11")
    # TensorRT 10.13's parser is older than the 10.16 table: it is judged by 10.3's, which rejects HannWindow
    assert [(f.rule, f.node) for f in _errors(model, "trt10.13")] == [("operator", "/extra/hann")]
    assert not _errors(model, "trt11.2")
    assert operator_table("trt10.3")["ops"]["HannWindow"]["supported"] is False


def test_onnxruntime_qoperator_and_custom_ops_are_rejected(exports):
    """QLinearConv (ONNX Runtime's QOperator format) is not in TensorRT's parser; a custom-domain op needs a
    plugin nobody registered."""
    model = _with_node(_load(exports, "onnx-fp32"),
                       helper.make_node("QLinearConv", ["a", "b", "c", "d", "e", "f", "g", "h"], ["y"], name="/extra/qconv"))
    model = _with_node(model, helper.make_node("FancyNMS", ["cand_boxes"], ["z"], name="/extra/custom", domain="acme"),
                       domain_opset=("acme", 1))
    for target in TRT_TARGETS:
        assert {f.node for f in _errors(model, target, "operator")} == {"/extra/qconv", "/extra/custom"}


def test_operator_tables_are_the_whole_documented_table():
    for target in TRT_TARGETS:
        table = operator_table(target)
        assert "operators.md" in table["source"] and len(table["source"].split("commit ")[1].strip(")")) == 40
        ops = table["ops"]
        assert len(ops) > 190 and sum(r["supported"] for r in ops.values()) > 140
        assert ops["NonMaxSuppression"]["supported"] and not ops["Unique"]["supported"]
        assert "3840" in ops["TopK"]["restrictions"]


def test_targets_from_versions_and_metadata():
    assert target_for_tensorrt("10.3.0") == "trt10.3" and target_for_tensorrt("10.13.1.2") == "trt10.13"
    assert target_for_tensorrt("11.4.1") == "trt11.4"
    # a version is judged by the nearest table at or below it, never above (10.4-10.15 by 10.3's, not 10.16's)
    assert [table_for_target(t) for t in ("trt10.3", "trt10.4", "trt10.15", "trt10.16", "trt11.0", "trt11.1", "trt12.0")] \
        == ["trt10.3", "trt10.3", "trt10.3", "trt10", "trt10", "trt11", "trt11"]
    with pytest.raises(EdgedetError, match="older than every parser table") as e:
        table_for_target("trt8.6")
    one_line(e)
    with pytest.raises(EdgedetError, match="trtMAJOR.MINOR"):
        table_for_target("trt10.x")
    assert default_target(None) == "trt10.3" and default_target({"target": "cpu"}) == "cpu"
    assert default_target({"target": "tensorrt"}) == "tensorrt" and set(TARGETS) > set(TRT_TARGETS)


# --- export, build and the CLI --------------------------------------------------------------------------


@pytest.mark.slow
def test_export_refuses_a_failing_graph_and_writes_nothing(tmp_path, monkeypatch):
    import edgedet.export.conformance as conformance
    import edgedet.export.ssd  # noqa: F401 - the wrapper binds the real limit on import, before the patch

    monkeypatch.setattr(conformance, "TENSORRT_TOPK_LIMIT", 50)  # a stricter parser: K = 100 now fails
    opts = ExportOptions(model="ssdlite_tiny", out_dir=str(tmp_path))
    with pytest.raises(EdgedetError, match=r"fails the trt10\.3 check: .*TopK.*--no-check") as e:
        export_model(opts)
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())
    opts.check = False
    res = export_model(opts)
    assert res.artifacts["fp32"].is_file() and res.metadata["check"] is None


def test_cli_check_pass_fail_and_json(exports, tmp_path):
    ok = run_edgedet("check", "--engine", str(exports["onnx-int8"]), "--json", str(tmp_path / "r.json"))
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stderr and "trt10.3 (table of TensorRT 10.3), trt10 (table of TensorRT 10.16), trt11 (table of TensorRT 11.1)" in ok.stderr
    reports = json.loads((tmp_path / "r.json").read_text())["reports"]
    assert [r["target"] for r in reports] == list(TRT_TARGETS) and all(r["nodes"] > 100 for r in reports)

    model = _load(exports, "onnx-fp32")
    cast = next(n for n in model.graph.node if "images" in n.input)
    cast.input[0] = "images_nchw"
    model.graph.node.insert(0, helper.make_node("Transpose", ["images"], ["images_nchw"], name="/permute_first",
                                                perm=[0, 3, 1, 2]))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    r = run_edgedet("check", "--engine", str(bad), "--target", "trt11")
    assert r.returncode == 1 and "FAIL" in r.stderr and "/permute_first" in r.stdout
    assert_one_line_error(run_edgedet("check", "--engine", str(tmp_path / "missing.onnx")), "not found")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    assert_one_line_error(run_edgedet("check", "--engine", str(tmp_path / "junk.onnx")), "junk.onnx")


def test_build_refuses_cpu_artifacts_before_tensorrt(exports, tmp_path):
    from edgedet.export.trt_builder import BuildOptions, prepare

    src = tmp_path / "m.onnx"
    src.write_bytes(exports["onnx-fp32"].read_bytes())
    meta = json.loads(exports["onnx-fp32"].with_suffix(".json").read_text())
    src.with_suffix(".json").write_text(json.dumps({**meta, "target": "cpu"}))
    with pytest.raises(EdgedetError, match="CPU artifact"):
        prepare(BuildOptions(src))


def test_nms_limit_counts_box_class_pairs(exports):
    """INMSLayer's 5000 counts filtered (box, class) pairs: edgedet's one-hot class scores give 1000 pairs, the
    same 1000 boxes with dense scores over the model's classes give 1000 x classes and fail."""
    model = _load(exports, "onnx-fp32")
    assert not _errors(model, rule="nms")
    nms = next(n for n in model.graph.node if n.op_type == "NonMaxSuppression")
    boxes = [d.dim_value for v in onnx.shape_inference.infer_shapes(model).graph.value_info if v.name == nms.input[0]
             for d in [v.type.tensor_type.shape.dim[1]]]
    assert boxes == [1000]
    dense = helper.make_node("Relu", [nms.input[1]], ["dense_scores"], name="/extra/dense")  # no longer one-hot
    at = list(model.graph.node).index(nms)
    model.graph.node.insert(at, dense)
    nms.input[1] = "dense_scores"
    found = _errors(model, rule="nms")
    assert [f.node for f in found] == [nms.name] and "1000 boxes x " in found[0].message
    assert "(box, class) pairs" in found[0].message


def _resize_model(**attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="/up", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], [scales]), opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("attrs, fragment", [
    ({"mode": "cubic"}, "mode 'cubic'"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "'tf_crop_and_resize'"),
    ({"mode": "linear", "antialias": 1}, "antialias"),
    ({"mode": "linear", "keep_aspect_ratio_policy": "not_larger"}, "'not_larger'"),
])
def test_resize_rules_from_the_parsers_table(attrs, fragment):
    assert not _errors(_resize_model(mode="linear"), rule="resize")
    assert not _errors(_resize_model(mode="nearest", nearest_mode="floor"), rule="resize")
    for target in TRT_TARGETS:
        found = _errors(_resize_model(**attrs), target, rule="resize")
        assert len(found) == 1 and fragment in found[0].message, (target, [str(f) for f in found])


def test_unsorted_topk_and_a_newer_opset(exports):
    model = _load(exports, "onnx-fp32")
    topk = next(n for n in model.graph.node if n.op_type == "TopK")
    kept = [a for a in topk.attribute if a.name != "sorted"]
    del topk.attribute[:]
    topk.attribute.extend([*kept, helper.make_attribute("sorted", 0)])
    assert [f.node for f in _errors(model, rule="topk")] == [topk.name]
    model = _resize_model(mode="linear")
    model.opset_import[0].version = 25  # newer than every table: the importer warns, it does not refuse
    rep = check_model(model, "trt10.3")
    assert rep.passed and [f.rule for f in rep.warnings] == ["opset"]
