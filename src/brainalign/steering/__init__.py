"""Brain-guided language models (seed 002): tasks, hooks, encoders, NARI directions, NARF fine-tuning."""
from __future__ import annotations
