"""prefloop exporter: a training run into a servable, verified GGUF release."""
