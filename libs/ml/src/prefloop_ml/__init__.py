"""prefloop's shared ML library for the services that run torch (trainer, exporter): the base model.

The collector and the server never install it.
"""
