"""Interop with the verification ecosystem: ONNX models in and out, VNN-LIB properties in and
out, and alpha-beta-CROWN configs. Every module here imports its heavy dependency lazily."""
