"""TensorRT on what users ship: edgedet's real exports built by ``edgedet build`` and run by the runtime.

Every test here needs TensorRT and a GPU (``tensorrt`` marker; they skip elsewhere). They build the trained
fixture's exports (FP32/FP16/INT8 Q/DQ, both NMS flavours, fixed and dynamic batch) and a Faster R-CNN, then
compare the plan's detections with ONNX Runtime on the same ONNX file: the first machine with TensorRT tests
exactly the graphs ``edgedet export`` writes, not graphs written for the test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_edgedet
from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.export.parity import compare, engine_detections, verify_images

pytestmark = [pytest.mark.tensorrt, pytest.mark.slow]

#: Box agreement of a TensorRT plan with ONNX Runtime on the same ONNX (same label, IoU >= 0.9).
AGREEMENT = {"fp32": 0.99, "fp16": 0.97, "int8": 0.97}
SCORE = 0.1


@pytest.fixture(scope="module")
def exports(tiny_checkpoint, synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("trt-exports")
    res = {}
    for flavour, batch in (("onnx", 1), ("efficient", 2)):
        r = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig(flavour, score_thresh=SCORE),
                                       batch=batch, fp16=True, int8=True, calib_images=str(synth.train_json),
                                       calib_count=64, out_dir=str(out), name=f"tiny-{flavour}"))
        res.update({(flavour, p): path for p, path in r.artifacts.items()})
    dyn = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig("onnx", score_thresh=SCORE),
                                     dynamic_batch=4, out_dir=str(out), name="tiny-dynamic"))
    res[("dynamic", "fp32")] = dyn.artifacts["fp32"]
    return res


@pytest.fixture(scope="module")
def val_images(synth):
    return verify_images(24, str(synth.images_dir / "val_*.jpg"), (160, 160), "stretch", [128, 128, 128])


def _run(path, images, backend):
    from edgedet.runtime import Detector

    return engine_detections(Detector(path, backend=backend), images)


def _plan(onnx_path):
    return onnx_path.with_name(onnx_path.name[: -len(".onnx")] + ".plan")


def _agree(onnx_path, plan, images, precision):
    want = _run(onnx_path, images, "onnxruntime")
    got = _run(plan, images, "tensorrt")
    rep = compare(want, got, precision, SCORE).to_dict()
    assert rep["reference_boxes"] > len(images), rep
    assert rep["agreement"] >= AGREEMENT[precision], rep
    return rep


@pytest.mark.parametrize("flavour", ["onnx", "efficient"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_exports_build_and_agree_with_onnxruntime(exports, val_images, flavour, precision, need_cuda_binding):
    """Strongly typed on TensorRT 11 (the precision is the graph's); on 10 the FP16/Q-DQ graph plus its flag."""
    import tensorrt as trt

    from edgedet.export.trt_builder import tensorrt_features

    src = exports[(flavour, precision)]
    flag = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}[precision]
    r = run_edgedet("build", "--engine", str(src), *flag)
    assert r.returncode == 0, r.stderr
    if flavour == "efficient" and tensorrt_features(trt.__version__).efficient_nms_deprecated:
        assert "deprecated since TensorRT 10.12" in r.stderr
    plan = _plan(src)
    meta = json.loads(plan.with_suffix(".json").read_text())
    assert meta["precision"] == precision and meta["tensorrt"] == trt.__version__
    _agree(src, plan, val_images, precision)


def test_fp32_graph_with_fp16_flag_keeps_the_nms_tail_fp32(exports, val_images, need_cuda_binding):
    """TensorRT 10 weak typing: --fp16 on the FP32 graph pins the nms/ layers to FP32; TensorRT 11 refuses."""
    import tensorrt as trt

    from edgedet.export.trt_builder import tensorrt_features

    src = exports[("onnx", "fp32")]
    weak = src.parent / "weak"  # -o is the output folder: weak/<stem>.plan
    r = run_edgedet("build", "--engine", str(src), "--fp16", "-o", str(weak), "--force")
    if tensorrt_features(trt.__version__).strongly_typed_only:
        assert r.returncode == 1 and "export --fp16" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    _agree(src, weak / src.with_suffix(".plan").name, val_images, "fp16")


def test_tensorrt10_int8_calibration_of_a_real_export(exports, synth, val_images, need_cuda_binding):
    """TensorRT 10: the FP32 export calibrated by IInt8EntropyCalibrator2 from float32 uploads, then rebuilt
    from its checked cache alone."""
    import tensorrt as trt

    from edgedet.calib.trt_cache import read_cache, version_tag
    from edgedet.export.trt_builder import BuildOptions, build_engine, tensorrt_features

    if not tensorrt_features(trt.__version__).has_calibrators:
        pytest.skip("TensorRT 11 has no calibrators (build the Q/DQ .int8.onnx)")
    src = exports[("dynamic", "fp32")]
    out = src.with_name("calibrated.plan")
    res = build_engine(BuildOptions(src, out=out, int8=True, calib_images=str(synth.images_dir), calib_batch=4,
                                    calib_count=64, force=True))
    assert res.calibrated and res.precision == "int8"
    header, scales = read_cache(src.with_suffix(".calib"))
    assert str(header) == f"TRT-{version_tag(trt.__version__)}-EntropyCalibration2" and len(scales) > 50
    _agree(src, out, val_images, "int8")
    again = build_engine(BuildOptions(src, out=out, int8=True, force=True))
    assert not again.calibrated


def test_dynamic_batch_plan_runs_every_batch_size(exports, val_images, need_cuda_binding):
    from edgedet.runtime.trt_engine import TrtEngine

    import tensorrt as trt

    src = exports[("dynamic", "fp32")]
    cache = src.with_name("timing.cache")
    r = run_edgedet("build", "--engine", str(src), "--max-batch", "4", "--opt-batch", "2", "--timing-cache", str(cache),
                    "--workspace", "1")
    assert r.returncode == 0, r.stderr
    meta = json.loads(_plan(src).with_suffix(".json").read_text())
    assert meta["batch"] == {"dynamic": True, "min": 1, "opt": 2, "max": 4} and meta["device"] != "unknown"
    assert meta["versions"]["tensorrt"] == trt.__version__ and cache.stat().st_size > 0
    assert_one_line_error(run_edgedet("build", "--engine", str(src)), "--force")
    r = run_edgedet("build", "--engine", str(src), "--force", "--max-batch", "4", "--timing-cache", str(cache))  # reuses it
    assert r.returncode == 0, r.stderr
    with TrtEngine(_plan(src)) as eng:
        assert (eng.input_batch, eng.max_batch) == (None, 4)
        single = [eng(val_images[i:i + 1]) for i in range(4)]
        for batch in (1, 3, 4, 2):
            out = eng(val_images[:batch])
            for b in range(batch):
                k = int(single[b][0][0, 0])
                assert int(out[0][b, 0]) == k
                np.testing.assert_allclose(out[1][b, :k], single[b][1][0, :k], atol=1e-3)


def test_fasterrcnn_export_builds_and_agrees(tmp_path, need_cuda_binding):
    """RoiAlign (ROIAlign_TRT), per-level NMS and the scatter/TopK re-padding as TensorRT parses them."""
    import torch

    from test_export_fasterrcnn import _image

    torch.manual_seed(0)
    res = export_model(ExportOptions(model="fasterrcnn_mobilenet_v3_large_320_fpn", imgsz=(160, 160),
                                     nms=NMSConfig("onnx", score_thresh=0.011, max_dets=50), out_dir=str(tmp_path)))
    src = res.artifacts["fp32"]
    r = run_edgedet("build", "--engine", str(src))
    assert r.returncode == 0, r.stderr
    images = np.stack([_image(160, 160, seed).numpy() for seed in range(4)])
    want = _run(src, images, "onnxruntime")
    got = _run(_plan(src), images, "tensorrt")
    rep = compare(want, got, "fp32", 0.011).to_dict()
    assert rep["reference_boxes"] > 0 and rep["agreement"] >= 0.97, rep


def test_fixed_batch_plan_takes_fewer_images_and_refuses_more(exports, val_images, need_cuda_binding):
    from edgedet.errors import BackendError
    from edgedet.runtime.trt_engine import TrtEngine

    src = exports[("efficient", "fp32")]  # exported with --batch 2
    out = src.parent / "fixed" / src.with_suffix(".plan").name
    r = run_edgedet("build", "--engine", str(src), "-o", str(out.parent))
    assert r.returncode == 0, r.stderr
    with TrtEngine(out) as eng:
        assert (eng.input_batch, eng.max_batch) == (2, 2)
        full = eng(val_images[:2])
        one = eng(val_images[:1])  # runs the full batch, returns one row
        assert one[0].shape == (1, 1) and int(one[0][0, 0]) == int(full[0][0, 0]) > 0
        np.testing.assert_array_equal(one[1][0], full[1][0])
        with pytest.raises(BackendError, match="takes 1 to 2"):
            eng(val_images[:3])
