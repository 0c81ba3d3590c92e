"""One CLI vocabulary: every flag more than one verb takes comes from edgedet/cli/_vocabulary.py, means one
thing, and the table in docs/cli.md is the one the module prints; old spellings still work, with a warning."""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import run_edgedet
from edgedet.cli import _vocabulary, build_parser

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_flag_two_verbs_share_is_defined_once_in_the_vocabulary():
    where: dict[str, list[tuple[str, argparse.Action]]] = defaultdict(list)
    for verb, parser in _verb_parsers().items():
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    where[option].append((verb, action))
    shared = {opt: uses for opt, uses in where.items() if len(uses) > 1}
    assert len(shared) >= 20, sorted(shared)  # the vocabulary is really in use, not an empty registry
    hand_made = sorted(f"{opt} in {verb}" for opt, uses in shared.items() for verb, a in uses
                       if not getattr(a, "edgedet_flag", None))
    assert not hand_made, f"declared by hand instead of through _vocabulary.add: {hand_made}"
    for opt, uses in shared.items():  # one meaning: the same registry entry behind every current spelling
        keys = {a.edgedet_flag for _, a in uses if a.help != argparse.SUPPRESS}
        assert len(keys) <= 1, (opt, keys)


def test_a_verb_cannot_change_a_shared_flags_meaning():
    with pytest.raises(TypeError, match="may not change help"):
        _vocabulary.add(argparse.ArgumentParser(), "score-thresh", help="something else")


def test_cli_doc_table_is_the_vocabulary():
    text = CLI_DOC.read_text(encoding="utf-8")
    table = _vocabulary.markdown_table()
    assert table.count("\n") > 25
    assert table in text, ("docs/cli.md's vocabulary table is stale: paste what "
                           "_vocabulary.markdown_table() prints")


@pytest.mark.parametrize("argv, dest, value", [
    (["predict", "--conf", "0.3"], "score_thresh", 0.3),
    (["predict", "--source", "x.jpg"], "images", "x.jpg"),
    (["predict", "--save-json", "p.json"], "json", "p.json"),
    (["predict", "--save-dir", "d"], "out", "d"),
    (["run", "--engine", "m.onnx", "--video", "cam0", "--conf", "0.5"], "score_thresh", 0.5),
    (["build", "--calibrator", "minmax"], "calib_method", "minmax"),
    (["build", "--calib-max-images", "64"], "calib_count", 64),
    (["synth", "--out", "d", "--images", "12"], "count", 12),
    (["synth", "--out", "d", "--video"], "with_video", True),
])
def test_old_spellings_still_work_and_warn(argv, dest, value, capsys, monkeypatch):
    from edgedet import log

    monkeypatch.setattr(log, "_seen", set())  # each deprecation warns once per process
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert "is deprecated" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["predict", "--conf", "1.5"], "must be in [0, 1]"),  # an alias keeps the flag's type
    (["build", "--calibrator", "percentile"], "invalid choice"),
    (["bench", "--engine", "m.onnx", "--device", "gpu0"], "must be cpu, cuda or cuda:N"),
    (["eval", "--weights", "none", "--data", "d.json", "--max-images", "0"], "must be at least 1"),
    (["sweep", "--weights", "none", "--data", "d.json", "--max-images", "0"], "must be at least 1"),
])
def test_shared_flags_validate_the_same_way_everywhere(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_device_spelling_is_one_type():
    assert _vocabulary.device_spec("cuda:1") == "cuda:1"
    assert _vocabulary.device_spec("1") == "cuda:1"  # build's old integer
    assert _vocabulary.cuda_index("cuda:3") == 3 and _vocabulary.cuda_index("cpu") == 0


def test_build_out_is_a_folder(tmp_path):
    from edgedet.cli.build import plan_path

    assert plan_path("exports/m.fp16.onnx", str(tmp_path)) == str(tmp_path / "m.fp16.plan")
    assert plan_path("exports/m.onnx", "elsewhere/x.plan") == "elsewhere/x.plan"  # the old FILE form
    assert plan_path("exports/m.onnx", None) is None


def test_verbose_shows_debug_records_and_quiet_hides_them(capsys):
    from edgedet import log

    try:
        log.set_verbose(False)
        log.get("runtime.tensorrt").debug("TensorRT: hidden")
        log.set_verbose(True)
        log.get("runtime.tensorrt").debug("TensorRT: shown")
    finally:
        log.set_verbose(False)
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "edgedet: debug: runtime.tensorrt: TensorRT: shown" in err


def test_verbose_flag_reaches_every_verb():
    for verb, parser in _verb_parsers().items():
        assert any("--verbose" in a.option_strings for a in parser._actions), verb


def test_check_and_build_take_engine_flag_and_the_old_positional(tmp_path):
    missing = tmp_path / "nothing.onnx"
    new = run_edgedet("check", "--engine", str(missing))
    old = run_edgedet("check", str(missing))
    assert new.returncode == old.returncode == 1
    assert "is deprecated" in old.stderr and "is deprecated" not in new.stderr
    assert re.search(r"nothing\.onnx", new.stderr)
