"""The `smoothing` backend: median/percentile smoothing certificates (dissertation chapter 3).

Kept light: importing this package pulls in neither torch nor scipy; heavy modules are imported
lazily by the plan at run time.
"""
