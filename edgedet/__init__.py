"""edgedet: torchvision detectors from PyTorch to ONNX Runtime and TensorRT, with accuracy proof.

Importing the package is cheap: heavy modules (torch, torchvision) load only where used, so that
``edgedet.runtime`` stays usable on a device without torch.
"""

__version__ = "0.1.0"
