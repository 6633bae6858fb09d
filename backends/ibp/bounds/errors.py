"""Why a network cannot be bounded; the caller turns this into status ``unknown``."""


class UnsupportedLayer(Exception):
    """A layer (or layer configuration) the bound engine has no sound rule for."""

    def __init__(self, layer: object, why: str) -> None:
        self.layer_name = type(layer).__name__
        self.why = why
        super().__init__(f"cannot bound {self.layer_name}: {why}")
