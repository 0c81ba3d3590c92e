"""Serving edgedet exports on Triton Inference Server: the model repository ``edgedet serve export`` writes, the
Python-backend models it contains, and the client ``predict --server`` / ``run --server`` use. Torch-free."""
