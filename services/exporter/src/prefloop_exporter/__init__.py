"""prefloop exporter service."""
