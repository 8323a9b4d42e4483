"""Names the summary and its command line share, in a module that imports nothing, so
that building the ``gridsearch`` command line does not import numpy."""

#: The summary's plot registry: the name ``summarize --plots`` takes -> the function of
#: :mod:`results.plots` that draws it, in the order they are drawn. A new plot is one entry
#: here and its function there (:data:`results.plots.PLOTS` resolves these names).
PLOT_FUNCTIONS = {
    "loss_vs_lr": "loss_vs_lr",
    "widths": "widths_vs_latent",
    "pareto": "pareto",
    "heatmap": "heatmap",
    "curves": "curves",
    "best_runs": "best_runs",
    "collective": "collective",
}

#: The plots ``summarize`` can draw, in the order it draws them (``--plots``).
PLOT_NAMES = tuple(PLOT_FUNCTIONS)
