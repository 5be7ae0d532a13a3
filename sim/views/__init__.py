"""Views: text summaries, figures, the HTML report and notebook HTML. They read results only.

The submodules are imported on first use (``sim.views.plots`` after ``import sim``),
so that text commands do not pay for matplotlib.
"""

from sim.lazy import submodules

__getattr__ = submodules(__name__, ("display", "plots", "report", "text"))
