"""Deploy wrappers, NMS flavours, torch → ONNX, FP16 and the TensorRT builder (later issues)."""
