"""prefloop collector service."""
