"""uipbench: helper package of the uMLIP surfaces / cross-functional transfer companion repository.

The package is deliberately thin: notebooks in ``notebooks/`` hold the narrative and the plots, and call
into these modules for everything two notebooks share (data registry, model registry, result store, ...).
"""

__version__ = "0.1.0"
