"""Datasets, torch-free: calibration and the runtime tools read them too.

Every format is read into :class:`DetectionDataset`; images are decoded by :func:`read_image`.
"""

from edgedet.data.checks import check_images
from edgedet.data.coco import load_coco
from edgedet.data.imageio import read_image
from edgedet.data.registry import list_datasets, load_dataset, register_dataset
from edgedet.data.types import DetectionDataset, Sample
from edgedet.data.voc import load_voc

__all__ = [
    "DetectionDataset",
    "Sample",
    "check_images",
    "list_datasets",
    "load_coco",
    "load_dataset",
    "load_voc",
    "read_image",
    "register_dataset",
]
