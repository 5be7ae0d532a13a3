"""Results: replicate rows and summaries, the results folder and its checkpoints, exports."""

from sim.lazy import submodules

__getattr__ = submodules(__name__, ("checkpoint", "exports", "folder", "summaries", "tables"))
