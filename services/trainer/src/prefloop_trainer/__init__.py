"""prefloop trainer: preference training with LoRA through TRL, as a one-shot job."""
