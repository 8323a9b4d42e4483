"""Names the summary and its command line share, in a module that imports nothing, so
that building the ``gridsearch`` command line does not import numpy."""

#: The plots ``summarize`` can draw, in the order it draws them (``--plots``).
PLOT_NAMES = ("loss_vs_lr", "widths", "pareto", "heatmap", "curves", "best_runs", "collective")
