"""edgedet's exception types.

The library raises these for anything a user can cause; the CLI turns them into one line on
stderr and a non-zero exit, never a traceback. Being torch-free, runtime/ and calib/ import them too.
"""


class EdgedetError(Exception):
    """Base for every error a user can cause and fix."""


class DataError(EdgedetError):
    """A dataset, annotation file or image cannot be used."""


class ImageReadError(DataError):
    """One image file is missing, truncated or not an image."""


class ModelError(EdgedetError):
    """Unknown model name, incompatible options or weights."""


class WeightsError(ModelError):
    """Weights cannot be downloaded or loaded."""


class CheckpointError(WeightsError):
    """A checkpoint file is missing, corrupt or not for this model."""


class BackendError(EdgedetError):
    """A backend (ONNX Runtime, TensorRT, CUDA) is absent or refuses the artifact."""
