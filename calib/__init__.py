"""INT8 calibration sources and Q/DQ quantization, torch-free (later issue)."""
