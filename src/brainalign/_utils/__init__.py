"""Small helpers every layer may use (no imports from the rest of brainalign)."""
