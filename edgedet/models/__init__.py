"""edgedet's model zoo: torchvision detectors by short name, with weights handling that works offline.

    from edgedet.models import create_model, list_models
    list_models("fasterrcnn_*")
    model = create_model("ssdlite320", classes=["cat", "dog"], weights="default")

Importing this package registers every variant without importing torch; builders import it.
"""

from edgedet.models.registry import (
    ModelEntry,
    coco_classes,
    create_model,
    get_model_entry,
    list_models,
    register_alias,
    register_model,
)

# Importing the family modules registers their variants.
from edgedet.models import fasterrcnn as _fasterrcnn  # noqa: E402,F401
from edgedet.models import ssd as _ssd  # noqa: E402,F401

__all__ = [
    "ModelEntry",
    "coco_classes",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_alias",
    "register_model",
]
