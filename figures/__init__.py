"""The registry of figures and the command that regenerates them."""

__all__: list[str] = []
