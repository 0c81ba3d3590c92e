"""The two ways PyTorch writes ONNX, behind one call, so every export path (zoo models, NMS flavours, FP16/INT8
twins, fixed and dynamic batch) goes through either: ``torch-export`` (``torch.onnx.export(dynamo=True)``, built on
``torch.export``, PyTorch's default since 2.9, and edgedet's) and ``torchscript`` (the tracer, ``dynamo=False``, which
PyTorch deprecates and will remove; kept as the fallback while the installed PyTorch has it).

``torch-export`` is the default because every zoo model × precision × NMS flavour passes the same gates with it
(``benchmarks/conformance_matrix.py``: ``edgedet check`` for every TensorRT target, OpenVINO, the TorchScript graph's
detections) and its graphs are a third to a half smaller and no slower; it exports 4-7x slower (seconds per model).

The deploy wrappers are written once for both (static shapes, no data-dependent Python control flow). Each exporter
has the opsets it writes here: the TorchScript tracer from 17; ``torch-export`` from 18, because its graphs carry
opset-18 Reduce/Split forms that ONNX's version converter cannot take down to 17 (measured: ``axes_input_to_attribute``
asserts on SSDlite and Faster R-CNN). The metadata records the graph's real opset and the exporter with its torch.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import TYPE_CHECKING

from edgedet.errors import EdgedetError

if TYPE_CHECKING:
    import onnx

#: exporter → the oldest opset it writes here (and its default)
EXPORTERS = {"torch-export": 18, "torchscript": 17}
#: what ``export`` uses when ``--exporter`` is not given
DEFAULT_EXPORTER = "torch-export"
FALLBACK = {"torch-export": "torchscript", "torchscript": "torch-export"}


def newest_opset(exporter: str) -> int:
    """The newest opset ``exporter`` writes with the installed PyTorch."""
    from torch.onnx import _constants

    if exporter == "torchscript":
        return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    return int(_constants.ONNX_MAX_OPSET)


def resolve_opset(exporter: str, opset: int | None) -> int:
    """``opset`` checked against what ``exporter`` writes (one line when it cannot), or the exporter's default."""
    if exporter not in EXPORTERS:
        raise EdgedetError(f"--exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    oldest, newest = EXPORTERS[exporter], newest_opset(exporter)
    if opset is None:
        return oldest
    if not oldest <= opset <= newest:
        raise EdgedetError(f"--opset must be in {oldest}..{newest} for --exporter {exporter}, not {opset}"
                           + (" (torch-export writes opset 18 or newer; --exporter torchscript writes 17)"
                              if exporter == "torch-export" and opset == 17 else ""))
    return opset


def graph_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset a graph declares."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_graph(wrapper, example, *, exporter: str, opset: int, outputs: tuple[str, ...], dynamic: bool,
                 what: str) -> onnx.ModelProto:
    """``wrapper(example)`` as an ONNX graph with input ``images`` and ``outputs``; with ``dynamic`` the batch
    axis is symbolic. ``what`` names the model in errors."""
    import torch

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python values, torch-export's deprecation notes
        if exporter == "torchscript":
            model = _torchscript(wrapper, example, opset, outputs, dynamic, what)
        else:
            model = _dynamo(wrapper, example, opset, outputs, dynamic, what)
    if graph_opset(model) != opset:
        raise EdgedetError(f"--exporter {exporter} wrote opset {graph_opset(model)} for {what}, not the {opset} asked "
                           f"for; export with --opset {graph_opset(model)} or --exporter {FALLBACK[exporter]}")
    return model


def _torchscript(wrapper, example, opset: int, outputs: tuple[str, ...], dynamic: bool, what: str) -> onnx.ModelProto:
    import onnx
    import torch

    buf = io.BytesIO()
    dynamic_axes = {n: {0: "batch"} for n in ("images", *outputs)} if dynamic else None
    try:
        torch.onnx.export(wrapper, (example,), buf, dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=list(outputs), dynamic_axes=dynamic_axes, do_constant_folding=True)
    except Exception as e:  # noqa: BLE001 - the fallback fails as one line too, also once PyTorch has removed it
        raise EdgedetError(f"--exporter torchscript cannot export {what} with torch {torch.__version__}: "
                           f"{_first_line(e)}; --exporter torch-export is the default") from None
    return onnx.load_from_string(buf.getvalue())


def _first_line(e: Exception) -> str:
    return next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)[:300]


def _dynamo(wrapper, example, opset: int, outputs: tuple[str, ...], dynamic: bool, what: str) -> onnx.ModelProto:
    import torch

    if dynamic and example.shape[0] < 2:  # torch.export specialises a size-1 dimension to the constant 1
        example = example.expand(2, *example.shape[1:]).contiguous()
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines ("[torch.onnx] Obtain model graph…")
            program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=["images"], output_names=list(outputs), dynamic_shapes=shapes,
                                        optimize=True)
    except Exception as e:  # noqa: BLE001 - torch.export fails in many exception types; each becomes one line
        raise EdgedetError(f"--exporter torch-export cannot export {what}: {_first_line(e)}; "
                           f"--exporter torchscript is the fallback") from None
    model = program.model_proto
    _shape_of_the_cast_input(model)
    return model


def _shape_of_the_cast_input(model: onnx.ModelProto) -> None:
    """A dynamic batch makes torch.export read ``Shape`` off the uint8 graph input, a type TensorRT's Shape layer
    does not take (``edgedet check``: BF16, BOOL, FP16, FP32, INT32, INT64). Read it off the input's Cast instead,
    which has the same shape; the Cast moves to the front so the graph stays in topological order."""
    import onnx

    image = model.graph.input[0]
    if image.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        return
    readers = [n for n in model.graph.node if image.name in n.input]
    cast = next((n for n in readers if n.op_type == "Cast"), None)
    shapes = [n for n in readers if n.op_type == "Shape"]
    if cast is None or not shapes:
        return
    for node in shapes:
        node.input[0] = cast.output[0]
    nodes = [n for n in model.graph.node if n is not cast]
    del model.graph.node[:]
    model.graph.node.extend([cast, *nodes])
