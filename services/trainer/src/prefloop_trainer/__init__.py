"""prefloop trainer service."""
