"""Feature-distortion metrics for real networks and a small federated experiment on CPU."""

__all__: list[str] = []
