"""Symbolic derivations and executable claims of the two-layer linear theory ([CLOSER], [KUMAR])."""

__all__: list[str] = []
