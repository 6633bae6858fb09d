"""Certified object detection by median smoothing (dissertation §3.3, §3.5, Algorithm 1)."""
