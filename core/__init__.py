"""Framework-free building blocks shared by every app (no Django or DRF imports)."""
