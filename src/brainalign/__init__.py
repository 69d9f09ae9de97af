"""brainalign: align AI model representations with fMRI."""
__version__ = "0.1.0"
