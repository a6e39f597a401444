"""prefloop's shared library: the contracts every stage speaks, settings, and the artifact store.

Services import this package and nothing of each other; it never imports torch.
"""

__version__ = "0.1.0"
