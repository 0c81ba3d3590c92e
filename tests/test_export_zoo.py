"""Every Faster R-CNN zoo model exports end to end (wrapper + NMS tail + metadata) in both NMS flavours
and agrees with eager torchvision on the same images.

Random-init weights score every class near 1/91, so a low score threshold gives plenty of boxes to
compare; the SSD family is covered in test_export_ssd.py.
"""

import pytest

from conftest import assert_runs_in_openvino
from edgedet.export.nms import NMSConfig
from edgedet.export.parity import verify_images
from edgedet.export.onnx_export import ExportOptions, export_model
from edgedet.models import list_models


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["onnx", "efficient"])
@pytest.mark.parametrize("model", list_models("fasterrcnn_*"))
def test_fasterrcnn_exports_with_parity(model, flavour, tmp_path):
    import torch

    torch.manual_seed(0)
    opts = ExportOptions(model=model, imgsz=(160, 160), nms=NMSConfig(flavour, score_thresh=0.011, max_dets=50),
                         out_dir=str(tmp_path), verify=2)
    result = export_model(opts)
    report = result.parity["fp32"]
    assert report["passed"] and report["boxes_compared"] > 0, report
    assert all(r["passed"] for r in result.metadata["check"].values()), result.metadata["check"]
    if flavour == "onnx":  # the plugin flavour is TensorRT's alone
        images = verify_images(2, None, (160, 160), "letterbox", result.metadata["input"]["pad_value"])
        assert_runs_in_openvino(result.artifacts["fp32"], images)
    assert result.metadata["input"]["resize"] == "letterbox" and result.metadata["family"] == "fasterrcnn"


def test_fasterrcnn_rejects_sizes_off_the_fpn_stride(tmp_path):
    from edgedet.errors import EdgedetError

    with pytest.raises(EdgedetError, match="multiple of 32"):
        export_model(ExportOptions(model="fasterrcnn_resnet18_fpn", imgsz=(150, 160), out_dir=str(tmp_path)))


def test_fasterrcnn_dynamic_batch_is_refused(tmp_path):
    from edgedet.errors import EdgedetError

    with pytest.raises(EdgedetError, match="--batch N"):
        export_model(ExportOptions(model="fasterrcnn_resnet18", dynamic_batch=4, out_dir=str(tmp_path)))
