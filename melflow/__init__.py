"""melflow: from a labelled audio corpus to a registered, evaluated sound classifier."""

__version__ = "0.1.0"
