"""The C++ runtime (runtime/cpp) built with CMake, its ctest suite, and parity with the Python Detector.

Both sides run the same export on the same OpenVINO backend, so a difference is the C++ code's: its
preprocessing (Debian's OpenCV 4.6 against the pip OpenCV), its metadata handling or its box mapping.
Parity: same labels, boxes matched at IoU >= 0.99, scores within 1e-3, boxes compared > 0, for FP32, FP16 and
INT8, SSD (stretch) and Faster R-CNN (letterbox), batch 1 and 4. Bad inputs run under valgrind too.

Needs cmake, a C++17 compiler, libopencv-dev, nlohmann-json3-dev, libgtest-dev and valgrind (.ci/run installs them).
Without them the module skips, unless EDGEDET_REQUIRE_CPP_TEST=1 (as in CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedet.export.nms import NMSConfig
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.runtime import Detector
from edgedet.runtime.preprocess import preprocess_batch, resize_into

CPP = Path(__file__).resolve().parents[1] / "runtime" / "cpp"
PAD = (124, 116, 104)  # what preprocess_dump pads with
SCORE = 0.25  # edgedet predict's default, and edgedet-cpp's


def _missing_toolchain() -> str | None:
    for tool in ("cmake", "c++", "cc", "valgrind"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    for header in ("/usr/include/opencv4/opencv2/core.hpp", "/usr/include/nlohmann/json.hpp", "/usr/include/gtest/gtest.h"):
        if not Path(header).is_file():
            return f"{header} not found (apt-get install libopencv-dev nlohmann-json3-dev libgtest-dev)"
    return None


_MISSING = _missing_toolchain()
if _MISSING and os.environ.get("EDGEDET_REQUIRE_CPP_TEST") == "1":
    raise RuntimeError(f"EDGEDET_REQUIRE_CPP_TEST=1 but the C++ toolchain is incomplete: {_MISSING}")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=f"C++ toolchain: {_MISSING}"),
              pytest.mark.slow]  # a CMake build of the runtime first


def _cmake(build: Path) -> None:
    """Configure and build runtime/cpp in ``build``; the active Python's openvino wheel is found by CMake."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)  # noqa: E731
    conf = run("cmake", "-S", str(CPP), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DEDGEDET_OPENVINO=ON")
    assert conf.returncode == 0, conf.stdout[-3000:] + conf.stderr[-3000:]
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    made = run("cmake", "--build", str(build), "-j", jobs)
    assert made.returncode == 0, made.stdout[-4000:] + made.stderr[-4000:]


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("cpp-build")
    _cmake(build)
    return build


def _run(cmd: list, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


# --- assets -----------------------------------------------------------------------------------------------


def _write_ppm(path: Path, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    path.write_bytes(f"P6 {w} {h} 255\n".encode() + np.ascontiguousarray(rgb).tobytes())


def _non_contract_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["boxes"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 32, 32])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def ssd_exports(fixture_exports) -> dict:
    """The trained fixture at batch 1 (FP32, FP16, INT8) and with a dynamic batch of up to 4 (FP32)."""
    return fixture_exports


@pytest.fixture(scope="module")
def frcnn_exports(fasterrcnn_checkpoint, synth, tmp_path_factory) -> dict:
    """The rescaled Faster R-CNN (letterbox) at batch 1 (FP32, FP16, INT8) and a fixed batch of 4 (FP32)."""
    out = tmp_path_factory.mktemp("cpp-frcnn")
    nms = NMSConfig("onnx", score_thresh=0.5, max_dets=100)
    one = export_model(ExportOptions(model=None, weights=str(fasterrcnn_checkpoint), imgsz=(160, 160), nms=nms,
                                     fp16=True, int8=True, calib_images=str(synth.images_dir), calib_count=16,
                                     out_dir=str(out)))
    four = export_model(ExportOptions(model=None, weights=str(fasterrcnn_checkpoint), imgsz=(160, 160), nms=nms,
                                      batch=4, name="frcnn_b4", out_dir=str(out)))
    return {**one.artifacts, "b4": four.artifacts["fp32"]}


@pytest.fixture(scope="module")
def val_images(synth, tmp_path_factory) -> Path:
    """Ten val images of the synthetic split, as PNG (lossless: both sides decode the same pixels)."""
    folder = tmp_path_factory.mktemp("cpp-val")
    for p in sorted(synth.images_dir.iterdir())[-10:]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def frcnn_images(tmp_path_factory) -> Path:
    """Non-square images (so letterboxing pads), from the Faster R-CNN tests' rectangle generator."""
    from test_export_fasterrcnn import _image

    folder = tmp_path_factory.mktemp("cpp-frcnn-img")
    for seed, (h, w) in enumerate([(120, 200), (200, 130), (160, 160), (97, 211), (240, 180), (150, 150)]):
        cv2.imwrite(str(folder / f"img{seed}.png"), cv2.cvtColor(_image(h, w, seed + 3).numpy(), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def assets(ssd_exports, val_images, tmp_path_factory) -> Path:
    """What the ctest suite reads (EDGEDET_TEST_ASSETS): the fixture export, bad variants, one image."""
    d = tmp_path_factory.mktemp("cpp-assets")
    good, side = Path(ssd_exports["fp32"]), Path(ssd_exports["fp32"]).with_suffix(".json")
    meta = json.loads(side.read_text())
    for stem in ("good", "corrupt", "newer", "mismatch", "mismatch_batch"):
        shutil.copy(good, d / f"{stem}.onnx")
    shutil.copy(good, d / "embedded.onnx")  # no sidecar: the metadata_props
    shutil.copy(side, d / "good.json")
    (d / "corrupt.json").write_text("{not json")
    (d / "newer.json").write_text(json.dumps({**meta, "schema_version": 99}))
    (d / "mismatch.json").write_text(json.dumps({**meta, "input": {**meta["input"], "size": [320, 320]}}))
    (d / "mismatch_batch.json").write_text(json.dumps({**meta, "batch": {"dynamic": False, "size": 4}}))
    _non_contract_onnx(d / "noncontract.onnx")
    (d / "garbage.onnx").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "empty.onnx").write_bytes(b"")
    (d / "good.plan").write_bytes(b"not a TensorRT plan")
    plugin = export_model(ExportOptions(model="ssdlite_tiny", nms=NMSConfig("efficient"), name="plugin", out_dir=str(d)))
    assert Path(plugin.artifacts["fp32"]).name == "plugin.onnx"
    image = sorted(val_images.iterdir())[0]
    shutil.copy(image, d / "image.png")
    _write_ppm(d / "image.ppm", cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB))
    return d


# --- comparisons --------------------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:  # degenerate boxes (clipped flat at the image border): compare the coordinates
        return float(np.abs(np.subtract(a, b)).max() <= 0.01)
    return inter / union


def _assert_same(cpp: list[tuple[int, float, np.ndarray]], py: list[tuple[int, float, np.ndarray]], where: str) -> int:
    """Same detections in the same order: labels equal, IoU >= 0.99 (or, for a box under a pixel wide, whose IoU the
    C++ JSON's 0.001 px rounding alone moves by more than 1 %, every coordinate within 0.002 px), scores within 1e-3.
    Returns how many."""
    assert len(cpp) == len(py), (where, len(cpp), len(py))
    for (lc, sc, bc), (lp, sp, bp) in zip(cpp, py):
        thin = min(bp[2] - bp[0], bp[3] - bp[1]) < 1.0
        same_box = _iou(bc, bp) >= 0.99 or (thin and np.abs(np.subtract(bc, bp)).max() <= 0.002)
        assert lc == lp and abs(sc - sp) <= 1e-3 and same_box, (where, (lc, sc, bc), (lp, sp, bp))
    return len(py)


def _python_detections(engine: Path, folder: Path) -> dict[str, list]:
    from edgedet.data.imageio import read_image

    det = Detector(engine, backend="openvino")
    out = {}
    for p in sorted(folder.iterdir()):
        d = det(read_image(p)).filter(SCORE)
        out[str(p)] = [(int(l), float(s), np.asarray(b, np.float64)) for b, s, l in zip(d.boxes, d.scores, d.labels)]
    return out


def _cpp_detections(cpp_build: Path, engine: Path, folder: Path, tmp_path: Path, batch: int) -> dict[str, list]:
    out_json = tmp_path / f"cpp-{engine.stem}-b{batch}.json"
    proc = _run([cpp_build / "edgedet-cpp", "predict", "--engine", engine, "--images", folder, "--json", out_json,
                 "--batch", batch, "--force"])
    assert proc.returncode == 0, proc.stderr
    label_of = {c: i for i, c in enumerate(Detector(engine, backend="openvino").metadata["category_ids"])}
    found: dict[str, list] = {str(p): [] for p in sorted(folder.iterdir())}
    for e in json.loads(out_json.read_text()):
        x, y, w, h = e["bbox"]
        found[e["file_name"]].append((label_of[e["category_id"]], e["score"], np.array([x, y, x + w, y + h])))
    return found


# --- tests --------------------------------------------------------------------------------------------------


def test_ctest_suite_passes_with_no_test_skipped(cpp_build, assets):
    proc = _run(["ctest", "--test-dir", cpp_build, "--output-on-failure", "--no-tests=error"],
                env={"EDGEDET_TEST_ASSETS": str(assets)}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "100% tests passed" in proc.stdout and "Skipped" not in proc.stdout and "Not Run" not in proc.stdout, proc.stdout
    report = ET.parse(_gtest_xml(cpp_build, assets)).getroot()
    assert int(report.get("tests")) >= 15 and report.get("failures") == "0" and report.get("disabled") == "0"
    assert not report.findall(".//skipped"), "a gtest skipped although EDGEDET_TEST_ASSETS was set"


def _gtest_xml(build: Path, assets: Path, binary: str = "edgedet_tests", gtest_filter: str = "*") -> Path:
    xml = assets.parent / f"{binary}-{build.name}.xml"
    proc = _run([build / binary, f"--gtest_output=xml:{xml}", f"--gtest_filter={gtest_filter}"],
                env={"EDGEDET_TEST_ASSETS": str(assets)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return xml


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
def test_resized_buffers_match_python(cpp_build, val_images, frcnn_images, tmp_path, mode):
    """Debian's OpenCV 4.6 against the pip OpenCV: identical geometry and padding, and pixel values within one
    level on >= 99.9 % of pixels (INTER_LINEAR may differ in the last bit between builds)."""
    images = sorted(val_images.iterdir())[:3] + sorted(frcnn_images.iterdir())
    assert len(images) == 9
    for i, path in enumerate(images):
        for h, w in [(160, 160), (320, 256), (97, 131)]:
            raw = tmp_path / f"{i}-{h}x{w}.rgb"
            proc = _run([cpp_build / "preprocess_dump", path, h, w, mode, raw])
            assert proc.returncode == 0, proc.stderr
            cpp = np.frombuffer(raw.read_bytes(), np.uint8).reshape(h, w, 3)
            py = np.zeros((h, w, 3), np.uint8)
            fit = resize_into(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), py, mode, PAD)
            sx, sy = (float(v) for v in proc.stdout.split())
            assert (sx, sy) == (fit.sx, fit.sy), (path, h, w)
            diff = np.abs(cpp.astype(int) - py.astype(int))
            if mode == "letterbox":
                nh, nw = round(fit.sy * fit.height), round(fit.sx * fit.width)
                pad = np.ones((h, w), bool)
                pad[:nh, :nw] = False
                assert (cpp[pad] == PAD).all() and (py[pad] == PAD).all(), (path, h, w)
            assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (path, h, w, diff.max(), (diff == 0).mean())


@pytest.mark.parametrize("key,batch", [("fp32", 1), ("fp16", 1), ("int8", 1), ("dyn4", 4), ("dyn4", 1)])
def test_ssd_parity_with_python(cpp_build, ssd_exports, val_images, tmp_path, key, batch):
    engine = Path(ssd_exports[key])
    cpp = _cpp_detections(cpp_build, engine, val_images, tmp_path, batch)
    py = _python_detections(engine, val_images)
    assert cpp.keys() == py.keys()
    compared = sum(_assert_same(cpp[k], py[k], k) for k in py)
    print(f"\nC++ vs Python, ssd {key} batch {batch}: {compared} boxes identical within tolerance")
    assert compared >= 10


@pytest.mark.parametrize("key,batch", [("fp32", 1), ("fp16", 1), ("int8", 1), ("b4", 4), ("b4", 2)])
def test_fasterrcnn_parity_with_python(cpp_build, frcnn_exports, frcnn_images, tmp_path, key, batch):
    engine = Path(frcnn_exports[key])
    cpp = _cpp_detections(cpp_build, engine, frcnn_images, tmp_path, batch)
    py = _python_detections(engine, frcnn_images)
    compared = sum(_assert_same(cpp[k], py[k], k) for k in py)
    print(f"\nC++ vs Python, fasterrcnn {key} batch {batch}: {compared} boxes identical within tolerance")
    assert compared >= 10


def test_predict_json_is_edgedet_predicts(cpp_build, ssd_exports, val_images, tmp_path):
    """The same COCO results file as `edgedet predict --engine` (keys, ids, order; values within rounding)."""
    from conftest import run_edgedet

    engine = ssd_exports["fp32"]
    cpp, py = tmp_path / "cpp.json", tmp_path / "py.json"
    assert _run([cpp_build / "edgedet-cpp", "predict", "--engine", engine, "--images", val_images, "--json", cpp]).returncode == 0
    proc = run_edgedet("predict", "--engine", str(engine), "--backend", "openvino", "--images", str(val_images), "--json", str(py))
    assert proc.returncode == 0, proc.stderr
    a, b = json.loads(cpp.read_text()), json.loads(py.read_text())
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and (x["image_id"], x["category_id"], x["file_name"]) == (y["image_id"], y["category_id"], y["file_name"])
        assert abs(x["score"] - y["score"]) <= 1e-3 and np.abs(np.subtract(x["bbox"], y["bbox"])).max() <= 0.05


def test_c_api_from_plain_c_matches_python(cpp_build, assets):
    proc = _run([cpp_build / "c_api_test"], env={"EDGEDET_TEST_ASSETS": str(assets)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    cpp = [(int(r[0]), float(r[1]), np.array([float(v) for v in r[2:]])) for r in rows]
    from edgedet.data.imageio import read_image

    d = Detector(assets / "good.onnx", backend="openvino")(read_image(assets / "image.png"))
    py = [(int(l), float(s), np.asarray(b, np.float64)) for b, s, l in zip(d.boxes, d.scores, d.labels)]
    assert _assert_same(cpp, py, "c api") > 0


def test_cli_bad_inputs_are_one_line_errors(cpp_build, assets, val_images, tmp_path):
    cli = cpp_build / "edgedet-cpp"
    bad_dir = tmp_path / "imgs"
    bad_dir.mkdir()
    shutil.copy(assets / "image.png", bad_dir / "a.png")
    (bad_dir / "b.png").write_bytes(b"not a png")
    existing = tmp_path / "exists.json"
    existing.write_text("[]")
    cases = [
        (["predict", "--engine", tmp_path / "missing.onnx", "--images", val_images], "engine not found"),
        (["predict", "--engine", assets / "corrupt.onnx", "--images", val_images], "not valid JSON"),
        (["predict", "--engine", assets / "noncontract.onnx", "--images", val_images], "engine contract"),
        (["predict", "--engine", assets / "good.onnx", "--images", tmp_path / "nothing"], "source not found"),
        (["predict", "--engine", assets / "good.onnx", "--images", bad_dir, "--bad-images", "fail"], "cannot read image"),
        (["predict", "--engine", assets / "good.onnx", "--images", val_images, "--json", existing], "--force"),
        (["predict", "--engine", assets / "good.onnx", "--images", val_images, "--score-thresh", "2"], "--score-thresh"),
        (["predict", "--engine", assets / "good.onnx", "--images", val_images, "--batch", "2"], "at most 1"),
        (["predict", "--images", val_images], "--engine"),
        (["predict", "--engine", assets / "good.onnx", "--images", val_images, "--frobnicate"], "unrecognized"),
        (["bench", "--engine", assets / "good.onnx", "--iters", "0"], "--iters"),
        (["run", "--engine", assets / "good.onnx", "--video", tmp_path / "none.mp4"], "video source not found"),
        (["serve"], "unknown verb"),
    ]
    for args, fragment in cases:
        proc = _run([cli, *args])
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert proc.returncode == 1 and len(errors) == 1 and fragment in errors[0], (args, proc.returncode, proc.stderr)
    assert existing.read_text() == "[]"  # nothing overwritten
    skipped = _run([cli, "predict", "--engine", assets / "good.onnx", "--images", bad_dir, "--json", "-"])
    assert skipped.returncode == 0 and "skipped: cannot read image" in skipped.stderr, skipped.stderr
    assert {e["file_name"] for e in json.loads(skipped.stdout)} == {str(bad_dir / "a.png")}


def test_bench_and_run(cpp_build, ssd_exports, synth, tmp_path):
    from edgedet.runtime.bench import BenchResult

    cli = cpp_build / "edgedet-cpp"
    proc = _run([cli, "bench", "--engine", ssd_exports["dyn4"], "--batch", "4", "--iters", "5", "--warmup", "1", "--json", "-"])
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert set(BenchResult.__dataclass_fields__) <= stats.keys()  # the statistics of `edgedet bench`
    assert stats["batch"] == 4 and stats["iters"] == 5 and stats["backend"] == "openvino"
    assert 0 < stats["p50_ms"] <= stats["p99_ms"] and stats["preprocess_ms"] > 0 and stats["throughput_ips"] > 0
    video = tmp_path / "out.mp4"
    proc = _run([cli, "run", "--engine", ssd_exports["fp32"], "--video", synth.video, "--save", video, "--headless",
                 "--max-frames", "12"])
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 12


def test_bad_inputs_clean_under_valgrind(cpp_build, assets):
    """The bad-input tests and the C API test under valgrind's memcheck: no invalid access, no use of
    uninitialised memory, no definite leak. (AddressSanitizer cannot run OpenVINO: its TBB dlopens tbbbind with
    RTLD_DEEPBIND, which ASan refuses.) tests/valgrind.supp holds the suppressions, each outside edgedet."""
    valgrind = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite", "-q",
                f"--suppressions={CPP / 'tests' / 'valgrind.supp'}"]
    gtests = "BadEngines.*:Detector.BadImagesAndBatchesAreErrorsNotCrashes:Metadata.*:BadImages.*"
    for cmd in ([cpp_build / "edgedet_tests", f"--gtest_filter={gtests}"], [cpp_build / "c_api_test"]):
        proc = _run([*valgrind, *cmd], env={"EDGEDET_TEST_ASSETS": str(assets)}, timeout=900)
        assert proc.returncode == 0 and "==" not in proc.stderr.replace("[==========]", ""), proc.stderr[-4000:]


def test_example_builds_against_the_installed_package(cpp_build, assets, tmp_path):
    """`find_package(edgedet)` from an install prefix: the three lines of CMake an application needs."""
    prefix = tmp_path / "prefix"
    proc = _run(["cmake", "--install", cpp_build, "--prefix", prefix])
    assert proc.returncode == 0, proc.stderr
    build = tmp_path / "example"
    for cmd in (["cmake", "-S", CPP / "examples", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}"], ["cmake", "--build", build]):
        proc = _run(cmd)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = _run([build / "detect", assets / "good.onnx", assets / "image.png", tmp_path / "out.jpg"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.jpg").is_file()
    # what it prints is what the Python Detector finds on the same image with the same export
    printed = _example_detections(proc.stdout)
    from edgedet.data.imageio import read_image

    det = Detector(assets / "good.onnx", backend="openvino")
    want = det(read_image(assets / "image.png")).filter(SCORE)
    assert len(want) > 0, "the fixture finds nothing on the image: nothing compared"
    assert [name for name, _, _ in printed] == [det.class_names[int(l)] for l in want.labels], (printed, want)
    for (_, score, box), s, b in zip(printed, want.scores, want.boxes):
        assert abs(score - float(s)) <= 1e-4 and np.abs(box - np.asarray(b, np.float64)).max() <= 0.5, (score, box, s, b)
    assert (CPP / "examples" / "detect.cpp").read_text().count("\n") <= 40


def _example_detections(stdout: str) -> list[tuple[str, float, np.ndarray]]:
    """The lines examples/detect.cpp prints, ``NAME SCORE [X1, Y1, X2, Y2]``, parsed (every line must parse)."""
    import re

    rows = []
    for line in stdout.splitlines():
        m = re.fullmatch(r"(.+) (\S+) \[(\S+), (\S+), (\S+), (\S+)\]", line.strip())
        assert m, f"not a detection line: {line!r}"
        rows.append((m[1], float(m[2]), np.array([float(v) for v in m.groups()[2:]])))
    return rows


# --- the DeepStream nvinfer parser (runtime/cpp/src/nvinfer_parse.cpp) ------------------------------------------

CONTRACT = {"num_dets": np.int32, "boxes": np.float32, "scores": np.float32, "labels": np.int32}
NVINFER_ENGINES = {"ssd": ("ssd_exports", "dyn4", "val_images"), "fasterrcnn": ("frcnn_exports", "b4", "frcnn_images")}


def _raw_batch(request, model: str) -> tuple[dict[str, np.ndarray], int]:
    """Detector.raw on four images preprocessed as the Detector does, and the export's number of classes."""
    exports, key, images = NVINFER_ENGINES[model]
    det = Detector(request.getfixturevalue(exports)[key], backend="openvino")
    paths = sorted(request.getfixturevalue(images).iterdir())[:4]
    batch, _ = preprocess_batch([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths], det.input_size,
                                det.resize, det.pad_value)
    raw = det.raw(batch)
    assert {k: raw[k].dtype for k in CONTRACT} == {k: np.dtype(t) for k, t in CONTRACT.items()}
    return raw, len(det.class_names)


def _nvinfer_parse(cpp_build: Path, raw: dict, b: int, folder: Path, num_classes: int, thresholds: list) -> list[dict]:
    """Item b as nvinfer hands it to the parser (its slice of each output, no batch dimension, in any order)."""
    folder.mkdir()
    layers = []
    for name in np.roll(list(CONTRACT)[::-1], b):  # reversed and rotated: never the contract's order
        t = np.ascontiguousarray(raw[name][b], np.dtype(CONTRACT[name]).newbyteorder("<"))
        (folder / f"{name}.bin").write_bytes(t.tobytes())
        layers.append({"name": str(name), "dtype": np.dtype(CONTRACT[name]).name, "dims": list(t.shape),
                       "file": f"{name}.bin"})
    (folder / "layers.json").write_text(json.dumps({"layers": layers, "num_classes_configured": num_classes,
                                                    "per_class_precluster_threshold": thresholds}))
    proc = _run([cpp_build / "nvinfer_parse_dump", folder])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _rows(raw: dict, b: int) -> list[tuple[int, np.float32, np.ndarray]]:
    """Item b's valid rows: label, score, box as nvinfer's left, top, width, height (float32 arithmetic)."""
    rows = []
    for i in range(int(raw["num_dets"][b, 0])):
        x1, y1, x2, y2 = raw["boxes"][b, i]
        rows.append((int(raw["labels"][b, i]), raw["scores"][b, i], np.array([x1, y1, x2 - x1, y2 - y1])))
    return rows


def _assert_objects(objects: list[dict], rows: list, where: str) -> int:
    assert len(objects) == len(rows), (where, len(objects), len(rows))
    for o, (label, score, ltwh) in zip(objects, rows):
        got = np.array([o["left"], o["top"], o["width"], o["height"]])
        same = o["class_id"] == label and o["confidence"] == score and np.abs(got - ltwh).max() <= 1e-5
        assert same, (where, o, label, score, ltwh)
    return len(rows)


@pytest.mark.parametrize("model", list(NVINFER_ENGINES))
def test_nvinfer_parser_returns_the_engines_rows(request, cpp_build, tmp_path, model):
    raw, classes = _raw_batch(request, model)
    compared = sum(_assert_objects(_nvinfer_parse(cpp_build, raw, b, tmp_path / str(b), classes, [0.0] * classes),
                                   _rows(raw, b), f"{model} item {b}") for b in range(len(raw["num_dets"])))
    print(f"\nnvinfer parser vs Detector.raw, {model}: {compared} boxes identical")
    assert compared > 0


@pytest.mark.parametrize("model", list(NVINFER_ENGINES))
def test_nvinfer_parser_drops_unconfigured_classes_and_low_scores(request, cpp_build, tmp_path, model):
    """num-detected-classes below the export's classes and pre-cluster-threshold per class: a row stays when its
    class is configured and its score >= the class's threshold (each threshold a real score: equality keeps)."""
    raw, classes = _raw_batch(request, model)
    configured = classes - 1
    rows = [r for b in range(len(raw["num_dets"])) for r in _rows(raw, b)]
    thresholds = []
    for c in range(configured):
        scores = sorted(float(s) for label, s, _ in rows if label == c)
        thresholds.append(scores[len(scores) // 2] if scores else 0.0)
    kept = removed = 0
    for b in range(len(raw["num_dets"])):
        want = [r for r in _rows(raw, b) if r[0] < configured and r[1] >= np.float32(thresholds[r[0]])]
        kept += _assert_objects(_nvinfer_parse(cpp_build, raw, b, tmp_path / str(b), configured, thresholds), want,
                                f"{model} item {b}")
        removed += len(_rows(raw, b)) - len(want)
    print(f"\nnvinfer parser, {model}: {kept} rows kept, {removed} removed, thresholds {thresholds}")
    assert kept > 0 and removed > 0


def test_nvinfer_parser_library_exports_the_parse_function(tmp_path):
    """libnvdsinfer_edgedet.so against DeepStream's headers: nvinfer dlsym()s the unmangled NvDsInferParseEdgedet,
    the only symbol it exports; libedgedet is not needed (the core is linked in)."""
    include = os.environ.get("EDGEDET_DEEPSTREAM_INCLUDE")
    if not include:
        pytest.skip("EDGEDET_DEEPSTREAM_INCLUDE (DeepStream's sources/includes) not set: no libnvdsinfer_edgedet.so")
    build = tmp_path / "ds-build"
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    trt = os.environ.get("EDGEDET_DEEPSTREAM_TENSORRT_INCLUDE")
    extra = [f"-DEDGEDET_DEEPSTREAM_TENSORRT_INCLUDE={trt}"] if trt else []
    conf = _run(["cmake", "-S", CPP, "-B", build, "-DEDGEDET_BUILD_TESTS=OFF",
                 f"-DEDGEDET_DEEPSTREAM_INCLUDE={include}", *extra], env=env)
    assert conf.returncode == 0, conf.stdout[-3000:] + conf.stderr[-3000:]
    made = _run(["cmake", "--build", build, "--target", "nvdsinfer_edgedet"], env=env, timeout=600)
    log = made.stdout + made.stderr
    assert made.returncode == 0 and "warning" not in log, log[-6000:]
    lib = build / "libnvdsinfer_edgedet.so"
    symbols = _run(["nm", "-D", "--defined-only", lib]).stdout.splitlines()
    assert [line.split()[1:] for line in symbols] == [["T", "NvDsInferParseEdgedet"]], symbols
    assert "libedgedet" not in _run(["readelf", "-d", lib]).stdout


# --- DeepStream's input (--input-format float-nchw) and nvinfer emulated end to end ------------------------------


@pytest.fixture(scope="module")
def float_exports(tiny_checkpoint, fasterrcnn_checkpoint, tmp_path_factory) -> dict:
    """The exports nvinfer is fed: the SSD fixture with a dynamic batch (as nvinfer builds ONNX) and the
    letterbox Faster R-CNN, both with the float32 NCHW input and the thresholds of ssd_exports / frcnn_exports."""
    out = tmp_path_factory.mktemp("cpp-float")
    ssd = export_model(ExportOptions(model=None, weights=str(tiny_checkpoint), nms=NMSConfig("onnx", score_thresh=0.05),
                                     dynamic_batch=4, input_format="float-nchw", name="tiny_f", out_dir=str(out)))
    frcnn = export_model(ExportOptions(model=None, weights=str(fasterrcnn_checkpoint), imgsz=(160, 160),
                                       nms=NMSConfig("onnx", score_thresh=0.5, max_dets=100),
                                       input_format="float-nchw", name="frcnn_f", out_dir=str(out)))
    return {"ssd": ssd.artifacts["fp32"], "fasterrcnn": frcnn.artifacts["fp32"]}


@pytest.mark.parametrize("model,uint8_key,images,batch", [("ssd", "dyn4", "val_images", 4),
                                                          ("fasterrcnn", "fp32", "frcnn_images", 1)])
def test_cpp_runs_float_nchw_exports_as_the_uint8_ones(request, cpp_build, float_exports, tmp_path, model,
                                                       uint8_key, images, batch):
    """The C++ runtime (OpenVINO's preprocessing turns its uint8 NHWC buffer into the float NCHW input) detects on
    the DeepStream export what Python detects on the uint8 export of the same model."""
    folder = request.getfixturevalue(images)
    uint8 = Path(request.getfixturevalue("ssd_exports" if model == "ssd" else "frcnn_exports")[uint8_key])
    cpp = _cpp_detections(cpp_build, Path(float_exports[model]), folder, tmp_path, batch)
    py = _python_detections(uint8, folder)
    compared = sum(_assert_same(cpp[k], py[k], k) for k in py)
    print(f"\nC++ float-nchw vs Python uint8, {model}: {compared} boxes identical within tolerance")
    assert compared >= 10


def _even_frames(folder: Path) -> list[np.ndarray]:
    """The images as streammux frames: nvinfer scales an even-sized surface, so odd sizes are cropped here for
    both sides."""
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.iterdir())]
    return [f[: f.shape[0] & ~1, : f.shape[1] & ~1].copy() for f in frames]


def _nvinfer_detections(cpp_build, engine: Path, frames, tmp_path, pad=(0, 0, 0)):
    """nvinfer end to end, emulated from its sources (tests/nvinfer_emulation.py), with the real parser core."""
    import onnxruntime as ort

    from edgedet.runtime.detections import Detections
    from nvinfer_emulation import frame_objects, network_input

    meta = Detector(engine).metadata
    h, w = meta["input"]["size"]
    classes, thresh = len(meta["classes"]), float(meta["nms"]["score_thresh"])
    session = ort.InferenceSession(str(engine), providers=["CPUExecutionProvider"])
    out = []
    for i, frame in enumerate(frames):
        tensor, scaled = network_input(frame, h, w, keep_aspect=meta["input"]["resize"] == "letterbox", pad=pad)
        raw = dict(zip(["num_dets", "boxes", "scores", "labels"], session.run(None, {"images": tensor})))
        objects = _nvinfer_parse(cpp_build, raw, 0, tmp_path / f"{i}-{pad[0]}", classes, [thresh] * classes)
        attached = frame_objects(objects, scaled, classes, [thresh] * classes)
        boxes = np.array([[o["left"], o["top"], o["left"] + o["width"], o["top"] + o["height"]] for o in attached],
                         np.float32).reshape(-1, 4)
        out.append(Detections(boxes, np.array([o["confidence"] for o in attached], np.float32),
                              np.array([o["class_id"] for o in attached], np.int64)))
    return out


def test_nvinfer_emulated_detects_what_the_detector_detects_on_stretch_exports(cpp_build, float_exports, val_images,
                                                                               tmp_path):
    """Stretch (SSD): nvinfer's scaling, float input, parser and box mapping give exactly the Detector's boxes."""
    engine = Path(float_exports["ssd"])
    frames = _even_frames(val_images)
    det = Detector(engine)
    compared = 0
    for want, got in zip(det(frames), _nvinfer_detections(cpp_build, engine, frames, tmp_path)):
        order = np.lexsort((-want.scores, want.labels))  # nvinfer groups by class; within a class, engine order
        assert len(got) == len(want)
        assert np.array_equal(got.labels, want.labels[order]) and np.allclose(got.scores, want.scores[order])
        assert np.abs(got.boxes - want.boxes[order]).max(initial=0) <= 1e-3
        compared += len(want)
    print(f"\nnvinfer emulated vs Detector, SSD stretch: {compared} boxes identical")
    assert compared >= 10


def test_nvinfer_letterbox_padding_measured(cpp_build, float_exports, frcnn_images, tmp_path):
    """Letterbox (Faster R-CNN): nvinfer pads with black where edgedet pads with the mean colour (and truncates
    the scaled side where edgedet rounds). With edgedet's padding the emulation must agree with the Detector;
    with nvinfer's black the agreement is measured and must be what the nvinfer config's comment says."""
    from edgedet.export.parity import compare
    from edgedet.runtime.deepstream import LETTERBOX_AGREEMENT

    engine = Path(float_exports["fasterrcnn"])
    frames = _even_frames(frcnn_images)
    det = Detector(engine)

    def visible(dets):  # boxes found inside the padding have no area in the frame: edgedet clips them to a line,
        # nvinfer leaves them below the frame with a negative height; neither is a detection of the frame
        return [d.filter() if not len(d) else type(d)(d.boxes[k], d.scores[k], d.labels[k])
                for d in dets for k in [(d.boxes[:, 2] > d.boxes[:, 0]) & (d.boxes[:, 3] > d.boxes[:, 1])]]

    want = visible(det(frames))
    mean = compare(want, visible(_nvinfer_detections(cpp_build, engine, frames, tmp_path, pad=det.pad_value)), "fp32",
                   0.5)
    black = compare(want, visible(_nvinfer_detections(cpp_build, engine, frames, tmp_path)), "fp32", 0.5)
    print(f"\nnvinfer emulated vs Detector, Faster R-CNN letterbox: mean padding {mean.agreement:.3f} of "
          f"{mean.boxes_compared}, black padding {black.agreement:.3f} of {black.boxes_compared}")
    assert mean.boxes_compared >= 10 and mean.agreement == 1.0 and mean.max_box_diff <= 1e-3
    assert black.boxes_compared >= 10 and black.agreement >= LETTERBOX_AGREEMENT
