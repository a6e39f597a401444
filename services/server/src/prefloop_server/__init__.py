"""prefloop server service."""
