"""Why a network cannot be bounded; the caller turns this into status ``unknown``."""


class UnsupportedLayer(Exception):
    """A layer (or layer configuration) the bound engine has no sound rule for."""

    def __init__(self, layer: object, why: str) -> None:
        self.layer_name = type(layer).__name__
        self.why = why
        super().__init__(f"cannot bound {self.layer_name}: {why}")


class UnsupportedOp(UnsupportedLayer):
    """An operation of the traced computation with no sound bound rule, named with where it
    comes from (module path and source line), so the ``unknown`` reason points at the code."""

    def __init__(self, op: str, where: str, why: str) -> None:
        self.layer_name = op
        self.op = op
        self.where = where
        self.why = why
        at = f" at {where}" if where else ""
        Exception.__init__(self, f"cannot bound {op}{at}: {why}")


class CaptureError(UnsupportedOp):
    """``torch.export`` could not capture the model (data-dependent control flow, ...): no
    other tracer is tried, since one that specialises to a probe input would bound a
    different function."""
