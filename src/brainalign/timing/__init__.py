"""brainalign.timing: from stimulus events to the scanner's TR grid, and train-only dimensionality reduction."""
from brainalign.timing.grid import TrainPCA, lanczos_kernel, lanczos_resample, stimulus_design

__all__ = ["stimulus_design", "TrainPCA", "lanczos_kernel", "lanczos_resample"]
