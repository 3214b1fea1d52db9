"""uipbench: helper package of the uMLIP surfaces / cross-functional transfer companion repository.

The package is deliberately thin: notebooks in ``notebooks/`` hold the narrative and the plots, and call
into these modules for everything two notebooks share (data registry, model registry, result store, ...).
"""

__version__ = "0.1.0"


def _filter_known_warnings() -> None:
    """Warnings of third-party packages that say nothing about this project's results, filtered by their exact
    text so that any other warning still shows (measured on the executed chapters):

    * e3nn loads its own packaged constants with ``torch.load`` and warns once MACE/SevenNet have set
      ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (the weight files themselves are sha256-verified, :mod:`uipbench.weights`);
    * ``tqdm.auto`` (imported by a model package) warns that ipywidgets are absent: the project's bars are plain
      text and go to the terminal (:func:`uipbench.engine.progress_stream`);
    * GPAW warns that Debian's libxc 5.2.3 was built without ``--disable-fhc``: no run here failed to converge, and
      a libxc 7 build without FHC moved r2SCAN energies by at most 0.5 meV/atom (chapter 20, NOTES);
    * chgnet 0.4.2 builds its cell-volume tensor from a gradient-carrying tensor in prediction (``model.py``:
      ``volumes = torch.tensor(volumes, ...)``); the volume only divides the strain derivative of the energy (the
      stress), so the detached copy changes no prediction;
    * matgl 4.1.2 warns that the pre-3.0 weights in the data directory have an older model version: each of them is
      validated against published reference values before it is registered, with its domain declared
      (:mod:`uipbench.model_registry`, tests/test_matgl_models.py).
    """
    import warnings

    for message in (
        "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",
        "IProgress not found",
        "libxc should be compiled with --disable-fhc",
        "Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior",
        "Incompatible model version detected",
    ):
        warnings.filterwarnings("ignore", message=message)


_filter_known_warnings()
