"""PFT comparison figures: tradeoff, distortion and flooding (synthetic beside real)."""
