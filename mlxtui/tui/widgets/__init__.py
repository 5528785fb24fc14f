"""Widgets of the dashboard: they render state and raise messages; they never call MLX."""
