"""Writes notebooks/03_sweep.ipynb from plain cell lists, so it stays reviewable in diffs.

Run `python notebooks/make_sweep_notebook.py` after editing; the test suite executes the
notebook (nbmake) exactly as committed, from notebooks/ (outputs go to notebooks/out/).
"""

from __future__ import annotations

from make_notebooks import write  # the same notebook writer (run from this folder's script)

SWEEP = [
    ("md", "# Sweep a strategy's parameters, then check the winner out of sample\n\n"
           "A small grid of `prophet_momentum` on the built-in **synthetic** demo universe "
           "(offline). Every point is a full backtest; results land in "
           "`out/sweep/results.parquet`, one row per point. The same sweep runs on local "
           "worker processes with `workers=N`, or on a Dask cluster with "
           "`cluster=\"tcp://host:8786\"`; `tradeship sweep` is the command-line form."),
    ("code", "import shutil\nfrom pathlib import Path\n\n"
             "from IPython.display import Image, display\n\n"
             "from backtests.sweep import SweepSpec, run_sweep\n"
             "from backtests.walkforward import WalkForwardSpec, run_walkforward"),
    ("code", "spec = SweepSpec(\n"
             "    strategy=\"prophet_momentum\",\n"
             "    grid={\"top_n\": [1, 2, 3], \"threshold\": [0.0, 0.01, 0.02]},\n"
             "    params={\"prophet_window\": 30, \"momentum_lookback\": 10},  # fixed\n"
             "    source=\"demo\",\n"
             "    symbols=[f\"SYN{i:03d}\" for i in range(8)],\n"
             "    start=\"2024-01-02\",\n"
             "    end=\"2024-03-28\",\n"
             "    metric=\"sharpe\",\n"
             ")\n"
             "out = Path(\"out/sweep\")\n"
             "shutil.rmtree(out, ignore_errors=True)  # start afresh (a rerun would resume)\n"
             "result = run_sweep(spec, out, workers=1)\n"
             "print(result.outcome.ran, \"points run,\", result.outcome.failed, \"failed\")"),
    ("md", "One row per point: the parameters, every metric of `metrics.json` "
           "(`benchmark_*` too), the run time and the error, if any. `fits` counts the Prophet "
           "fits a point needed: points that differ only in `threshold` read every forecast "
           "from the shared cache."),
    ("code", "result.frame[[\"top_n\", \"threshold\", \"sharpe\", \"total_return\", "
             "\"max_drawdown\", \"trades\", \"fits\", \"error\"]]"),
    ("md", "**Importance** of a parameter: the share of the metric's variance across the "
           "points explained by that parameter's group means (eta squared). The heatmap "
           "shows the metric over the two most important parameters."),
    ("code", "print({name: round(value, 3) for name, value in result.importance.items()})\n"
             "display(Image(filename=str(result.heatmap_path)))"),
    ("code", "result.best"),
    ("md", "## Walk-forward\n\nThe best point above was picked on the data it is scored "
           "on. Walk-forward validation picks it on an in-sample window and scores it on the "
           "next, unseen, window, fold after fold; `degradation` is the difference."),
    ("code", "walk = WalkForwardSpec(\n"
             "    SweepSpec(\n"
             "        strategy=\"prophet_momentum\",\n"
             "        grid={\"threshold\": [0.0, 0.02]},\n"
             "        params={\"prophet_window\": 30, \"momentum_lookback\": 10, \"top_n\": 2},\n"
             "        symbols=[f\"SYN{i:03d}\" for i in range(8)],\n"
             "        start=\"2024-01-02\",\n"
             "        end=\"2024-04-30\",\n"
             "    ),\n"
             "    train=40,\n"
             "    test=20,\n"
             ")\n"
             "wf_out = Path(\"out/walkforward\")\n"
             "shutil.rmtree(wf_out, ignore_errors=True)\n"
             "wf = run_walkforward(walk, wf_out, workers=1)\n"
             "wf.folds"),
]


if __name__ == "__main__":
    write("03_sweep.ipynb", SWEEP)
