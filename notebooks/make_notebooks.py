"""Writes the example notebooks from plain cell lists, so they stay reviewable in diffs.

Run `python notebooks/make_notebooks.py` after editing; the test suite executes the
notebooks (nbmake) exactly as committed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

BACKTEST = [
    ("md", "# Backtest a strategy and look at it\n\nRuns `prophet_momentum` on the built-in "
           "**synthetic** demo universe (offline), then shows the report's plots. Swap "
           "`source` for `parquet:../../shared/data/sp500_daily.parquet` or `yfinance`."),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Image, display\n\n"
             "from backtests.runner import BacktestConfig, run_backtest, write_outputs"),
    ("code", "config = BacktestConfig(\n"
             "    strategy=\"prophet_momentum\",\n"
             "    source=\"demo\",\n"
             "    symbols=[f\"SYN{i:03d}\" for i in range(20)],\n"
             "    start=\"2024-01-02\",\n"
             "    end=\"2024-06-28\",\n"
             "    params={\"top_n\": 4, \"prophet_window\": 120, \"momentum_lookback\": 60},\n"
             ")\n"
             "result = run_backtest(config)\n"
             "report = write_outputs(result, Path(\"out/notebook_backtest\"))\n"
             "print(report)"),
    ("md", "Metrics of the strategy and of the equal-weight buy-and-hold benchmark:"),
    ("code", "import pandas as pd\n\n"
             "keys = [\"total_return\", \"cagr\", \"sharpe\", \"max_drawdown\", \"trades\", \"final_value\"]\n"
             "pd.DataFrame({\"strategy\": {k: result.metrics[k] for k in keys},\n"
             "              \"benchmark\": {k: result.metrics[\"benchmark\"][k] for k in keys}})"),
    ("code", "for name in (\"equity.png\", \"drawdown.png\", \"trades.png\"):\n"
             "    display(Image(filename=str(report.parent / name)))"),
    ("md", "Every rebalance's target weights (`decisions.csv`): the record an export is "
           "checked against."),
    ("code", "result.decisions.tail(10)"),
]

EXPORT = [
    ("md", "# Export a strategy, prove parity, read the file\n\nThe export is one Python "
           "file that imports nothing from tradeship. `verify-parity` backtests the strategy "
           "and replays every rebalance through the exported `decide()`."),
    ("code", "from pathlib import Path\n\n"
             "from exporters.export import build_export, write_export\n"
             "from exporters.parity import verify_parity"),
    ("code", "symbols = [f\"SYN{i:03d}\" for i in range(12)]\n"
             "params = {\"top_n\": 3, \"prophet_window\": 60, \"momentum_lookback\": 20}\n"
             "spec, compiled = build_export(\"prophet_momentum\", params, symbols)\n"
             "module_path, requirements = write_export(compiled, Path(\"out/export/strategy.py\"))\n"
             "print(module_path, len(compiled.text.splitlines()), \"lines\")\n"
             "print(requirements.read_text())"),
    ("code", "report, backtest = verify_parity(module_path, \"demo\", None, \"2024-01-02\", \"2024-03-28\")\n"
             "print(\"\\n\".join(report.lines()))\n"
             "assert report.ok"),
    ("md", "The top of the generated file: its header names the strategy, parameters, the "
           "hash of the source it was compiled from and the pinned requirements."),
    ("code", "print(\"\\n\".join(module_path.read_text().splitlines()[:45]))"),
    ("md", "Its entry point, at the end of the file:"),
    ("code", "text = module_path.read_text()\nprint(text[text.index(\"# entry point\") - 75:])"),
]


def write(name: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        for kind, src in cells
    ]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{name.split('.')[0]}-{index}"
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("01_backtest.ipynb", BACKTEST)
    write("02_export_and_parity.ipynb", EXPORT)
