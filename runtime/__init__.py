"""Torch-free inference runtime that applications embed on the device (later issue)."""
