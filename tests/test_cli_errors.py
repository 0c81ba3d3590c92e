"""Every error a user can cause: exit code 1, exactly one line on stderr, no traceback."""

import pytest

from conftest import assert_one_line_error, run_edgedet


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.pt").write_bytes(b"this is not a checkpoint")
    (d / "malformed.json").write_text('{"images": [,]}')
    (d / "nokey.json").write_text('{"annotations": [], "categories": []}')
    return d


def test_missing_annotation_file(tmp_path):
    assert_one_line_error(run_edgedet("train", "--model", "ssdlite_tiny", "--data", str(tmp_path / "nope.json")), "nope.json")


def test_unknown_model_suggests(synth):
    proc = run_edgedet("train", "--model", "ssdlite_tyni", "--data", str(synth.train_json))
    assert_one_line_error(proc, "unknown model 'ssdlite_tyni'", "ssdlite_tiny")


def test_malformed_json(bad_files, synth):
    proc = run_edgedet("train", "--model", "ssdlite_tiny", "--data", str(bad_files / "malformed.json"), "--images", str(synth.images_dir))
    assert_one_line_error(proc, "malformed.json")


def test_json_missing_field(bad_files, synth):
    proc = run_edgedet("eval", "--model", "ssdlite_tiny", "--weights", "none", "--data", str(bad_files / "nokey.json"),
                   "--images", str(synth.images_dir))
    assert_one_line_error(proc, "nokey.json", "images")


def test_missing_checkpoint(synth, tmp_path):
    proc = run_edgedet("eval", "--weights", str(tmp_path / "missing.pt"), "--data", str(synth.val_json), "--images", str(synth.images_dir))
    assert_one_line_error(proc, "checkpoint not found", "missing.pt")


def test_corrupt_checkpoint(bad_files, synth):
    proc = run_edgedet("predict", "--model", "ssdlite_tiny", "--weights", str(bad_files / "corrupt.pt"), "--images", str(synth.images_dir))
    assert_one_line_error(proc, "corrupt.pt")


def test_offline_weights_download_names_the_way_out(synth, tmp_path):
    """An empty torch hub cache (not the machine's, which may hold the weights) and no network: the download goes
    through a proxy on a closed loopback port, so it fails whether or not this machine is online."""
    dead_proxy = "http://127.0.0.1:9"  # the discard port, closed: connection refused at once
    proc = run_edgedet("predict", "--model", "ssdlite320", "--weights", "default", "--images", str(synth.images_dir),
                       env={"TORCH_HOME": str(tmp_path / "torch_home"), "HTTPS_PROXY": dead_proxy,
                            "https_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "http_proxy": dead_proxy,
                            "NO_PROXY": "", "no_proxy": ""})
    assert_one_line_error(proc, "--weights FILE", "--weights none")


def test_predict_missing_source(tmp_path):
    proc = run_edgedet("predict", "--model", "ssdlite_tiny", "--weights", "none", "--images", str(tmp_path / "nothing"))
    assert_one_line_error(proc, "source not found")


def test_unknown_preset(synth):
    proc = run_edgedet("train", "--model", "ssdlite_tiny", "--preset", "nosuch", "--data", str(synth.train_json))
    assert_one_line_error(proc, "unknown preset 'nosuch'", "tiny")


def test_synth_bad_count(tmp_path):
    assert_one_line_error(run_edgedet("synth", "--out", str(tmp_path / "s"), "--count", "1"), "at least 2")


def test_doctor_json():
    proc = run_edgedet("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    for key in ("edgedet", "torch", "onnxruntime", "tensorrt", "opencv", "cameras"):
        assert key in report


@pytest.mark.slow
def test_export_proposal_count_is_faster_rcnn_only(tmp_path):
    proc = run_edgedet("export", "--model", "ssdlite_tiny", "--weights", "none", "--rpn-post-nms-top-n", "50",
                       "-o", str(tmp_path))
    assert_one_line_error(proc, "--rpn-post-nms-top-n applies to Faster R-CNN")
    proc = run_edgedet("export", "--model", "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "none",
                       "--rpn-post-nms-top-n", "5000",
                       "-o", str(tmp_path))
    assert_one_line_error(proc, "1..3840")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, fragments", [
    (["exprt"], ["invalid choice: 'exprt'", "did you mean 'export'?"]),
    (["bench", "--engine", "m.onnx", "--backend", "onnxrt"], ["did you mean 'onnxruntime'?"]),
    (["export", "--model", "ssdlite_tiny"], ["required: --weights"]),
    (["export", "--weights", "none", "--scor-thresh", "0.3"], ["unrecognized arguments: --scor-thresh", "did you mean --score-thresh?"]),
    (["check", "--engine", "m.onnx", "--target", "trt12"], ["trtMAJOR.MINOR", "'trt12'"]),
    (["check", "--engine", "m.onnx", "--target", "trt8.6"], ["older than every parser table"]),
    (["build"], ["--engine FILE is required"]),
    (["verify", "--engine", "m.onnx", "--weights", "w.pt", "--data", "d.json", "--tolerance", "-1"],
     ["--tolerance", "must be 0 or more AP points"]),
    (["export", "--weights", "none", "--model", "ssdlite_tiny", "--opset", "99"], ["--opset must be in 18.."]),
    (["export", "--weights", "none", "--model", "ssdlite_tiny", "--name", "../../x"], ["--name is a file stem"]),
    (["export", "--weights", "none", "--batch", "two"], ["--batch: expected an integer, not 'two'"]),
])
def test_argument_errors_are_one_line_exit_1_with_a_suggestion(args, fragments):
    """argparse's own errors (exit 2 and a usage block before) follow the CLI's convention too."""
    proc = run_edgedet(*args)
    assert_one_line_error(proc, *fragments)
    assert "usage:" not in proc.stderr


def test_every_option_of_every_verb_has_help():
    import argparse

    from edgedet.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{verb} {a.option_strings or a.dest}" for verb, p in sub.choices.items() for a in p._actions if not a.help]
    assert len(sub.choices) >= 14 and not missing, missing


def test_an_opset_the_exporter_cannot_write_is_refused_before_it_prints_a_graph(tmp_path):
    proc = run_edgedet("export", "--weights", "none", "--model", "ssdlite_tiny", "--opset", "99", "-o", str(tmp_path))
    assert_one_line_error(proc, "--opset must be in")
    assert len(proc.stdout.splitlines()) < 3 and not list(tmp_path.iterdir()), proc.stdout[:500]
