"""``edgedet models``: the zoo table, the measurement cache, and one-line errors."""

from __future__ import annotations

import json

import pytest

from edgedet.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(tmp_path))
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield tmp_path
    torch.set_num_threads(before)


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and (cells[0].startswith("ssd") or cells[0].startswith("fasterrcnn")):
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow
def test_ssd_table_without_flops(capsys):
    assert main(["models", "ssd*", "--no-flops"]) == 0
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert list(rows) == ["ssd300", "ssdlite320", "ssdlite_tiny"]
    assert rows["ssdlite320"][1:3] == ["ssd", "320x320"]
    assert rows["ssd300"][2] == "300x300"
    assert rows["ssdlite_tiny"][2] == "160x160"
    assert 3.0 < float(rows["ssdlite320"][3]) < 4.0  # params (M), 91 classes
    assert all(r[4] == "-" for r in rows.values())  # GFLOPs skipped
    assert rows["ssdlite320"][5] == "COCO" and rows["ssdlite_tiny"][5] == "-"
    assert "fasterrcnn" not in out
    assert "3 model(s)" in err


def test_flops_come_from_the_cache(_cache, capsys):
    from edgedet.models.info import CACHE_FILE, _cache_key

    (_cache / CACHE_FILE).write_text(json.dumps({_cache_key("ssdlite_tiny"): {"params": 1234567, "flops": 12345678900}}))
    assert main(["models", "ssdlite_tiny"]) == 0
    row = _rows(capsys.readouterr().out)["ssdlite_tiny"]
    assert row[3:5] == ["1.23", "12.35"]


def test_flops_measured_and_cached(_cache, capsys):
    assert main(["models", "ssdlite_tiny", "--family", "ssd"]) == 0
    row = _rows(capsys.readouterr().out)["ssdlite_tiny"]
    assert 0.05 < float(row[4]) < 0.5
    assert "ssdlite_tiny" in (_cache / "model_stats.json").read_text()


def test_long_listing_has_descriptions(capsys):
    assert main(["models", "ssdlite_tiny", "--no-flops", "-l"]) == 0
    assert "trains from scratch" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["models", "yolo*"], ["models", "ssd*", "--family", "fasterrcnn"], ["models", "ssdlite"]])
def test_no_match_is_one_line_exit_1(argv, capsys):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("edgedet models: error: no model matches")
    if argv[-1] == "ssdlite":
        assert "did you mean ssdlite320" in err
