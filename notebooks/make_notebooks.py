"""Writes the example notebooks from plain cell lists, so they stay reviewable in diffs.

Run `python notebooks/make_notebooks.py` after editing; the test suite executes the
notebooks (nbmake) exactly as committed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

BACKTEST = [
    ("md", "# Write a strategy as a Backtrader class, backtest it, look at it\n\n"
           "The class below is the README's example: plain Backtrader (params, indicators in "
           "`__init__`, orders in `next()`) on tradeship's building blocks. It runs on the "
           "built-in **synthetic** demo universe (offline); swap `source` for "
           "`parquet:../../shared/data/sp500_daily.parquet` or `yfinance`."),
    ("code", "import backtrader as bt\n\n"
             "from tradeship import (\n"
             "    ProphetForecast,\n"
             "    equal_weights,\n"
             "    order_target_weights,\n"
             "    read_forecasts,\n"
             "    rebalance_due,\n"
             "    top_n_momentum,\n"
             ")\n\n\n"
             "class TrendProphet(bt.Strategy):\n"
             "    \"\"\"Every week: of the 5 best 6-month performers, hold those Prophet sees rising.\"\"\"\n\n"
             "    params = ((\"top_n\", 5), (\"lookback\", 126), (\"threshold\", 0.0))\n\n"
             "    def __init__(self):\n"
             "        self.fc = {d: ProphetForecast(d, window=252, horizon=5) for d in self.datas}\n\n"
             "    def next(self):\n"
             "        if not rebalance_due(self, every=5):\n"
             "            return\n"
             "        names = top_n_momentum(self, self.p.top_n, self.p.lookback)\n"
             "        forecast = read_forecasts(self.fc[d] for d in names)  # fitted in one batch\n"
             "        rising = [d._name for d in names if forecast[d._name] / d.close[0] - 1 > self.p.threshold]\n"
             "        order_target_weights(self, equal_weights(rising))"),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Image, display\n\n"
             "from backtests.runner import BacktestConfig, run_backtest, write_outputs\n\n"
             "config = BacktestConfig(\n"
             "    strategy=TrendProphet,\n"
             "    source=\"demo\",\n"
             "    symbols=[f\"SYN{i:03d}\" for i in range(20)],\n"
             "    start=\"2024-01-02\",\n"
             "    end=\"2024-06-28\",\n"
             "    params={\"top_n\": 4},\n"
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
    ("md", "What each rebalance asked for (`decisions.csv`: target weights, `$CASH` the weight "
           "left in cash): the record an export is checked against."),
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
             "# sources: the data kinds the module must read besides yfinance (parity replays demo)\n"
             "spec, compiled = build_export(\"prophet_momentum\", params, symbols, sources=[\"demo\"])\n"
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

PAPER = [
    ("md", "# Paper-trade an exported strategy on the local sandbox\n\n"
           "The sandbox is tradeship's local Alpaca-compatible paper broker: real HTTP, the real "
           "`alpaca-py` client, a simulated clock over the **synthetic** demo data. We export the "
           "demo strategy, then run its `run()` once per simulated session at 09:00 New York, "
           "exactly as its schedule would: it sends market-on-open orders, which fill at the "
           "open the backtest assumed."),
    ("code", "import os\nimport tempfile\nfrom pathlib import Path\n\nimport httpx\nimport pandas as pd\n\n"
             "from exporters.export import build_export, write_export\n"
             "from exporters.parity import load_module\n"
             "from live.journal import open_journal\n"
             "from live.sandbox import SandboxServer\n"
             "from marketdata.calendar import nyse_sessions"),
    ("code", "symbols = [f\"SYN{i:03d}\" for i in range(12)]\n"
             "params = {\"top_n\": 4, \"prophet_window\": 60, \"momentum_lookback\": 20,\n"
             "          \"rebalance_every\": 1, \"refit_every\": 1, \"threshold\": 0.0}\n"
             "spec, compiled = build_export(\"prophet_momentum\", params, symbols, default_source=\"demo\")\n"
             "path, _ = write_export(compiled, Path(\"out/paper/strategy.py\"))\n"
             "strategy = load_module(path)\n"
             "print(strategy.FILL, strategy.SCHEDULE)"),
    ("code", "work = Path(tempfile.mkdtemp())\n"
             "sandbox = SandboxServer(work / \"sandbox.db\", date=\"2024-05-31\", cash=100_000).start()\n"
             "os.environ.update({\n"
             "    \"APCA_API_BASE_URL\": sandbox.base_url,\n"
             "    \"APCA_API_KEY_ID\": sandbox.key,\n"
             "    \"APCA_API_SECRET_KEY\": sandbox.secret,\n"
             "    \"TRADESHIP_JOURNAL\": f\"sqlite:{work / 'journal.sqlite'}\",\n"
             "})\n"
             "headers = {\"APCA-API-KEY-ID\": sandbox.key, \"APCA-API-SECRET-KEY\": sandbox.secret}\n"
             "print(sandbox.base_url)"),
    ("md", "Five simulated sessions: set the sandbox's clock to 09:00 New York "
           "(`POST /sandbox/clock`, sandbox-only), run the module (it acts at the broker's "
           "clock), then move the clock past the open so the market-on-open orders fill."),
    ("code", "client = sandbox.trading_client()\n"
             "for day in nyse_sessions(\"2024-06-03\", \"2024-06-07\"):\n"
             "    print(f\"--- {day:%Y-%m-%d} 09:00 New York\")\n"
             "    clock = {\"time\": f\"{day:%Y-%m-%d}T09:00\"}\n"
             "    httpx.post(sandbox.base_url + \"/sandbox/clock\", json=clock, headers=headers).raise_for_status()\n"
             "    strategy.run(source=\"demo\")\n"
             "    clock = {\"time\": f\"{day:%Y-%m-%d}T09:31\"}\n"
             "    httpx.post(sandbox.base_url + \"/sandbox/clock\", json=clock, headers=headers).raise_for_status()"),
    ("code", "pd.DataFrame([{\"symbol\": p.symbol, \"qty\": float(p.qty),\n"
             "               \"market_value\": float(p.market_value)} for p in client.get_all_positions()])"),
    ("code", "account = client.get_account()\nprint(\"equity\", account.equity, \"cash\", account.cash)"),
    ("md", "The journal: each run's inputs, decision and orders (also `tradeship journal`)."),
    ("code", "runs = open_journal().recent_runs(10)\n"
             "pd.DataFrame([{\"run\": r[\"run_id\"], \"status\": r[\"status\"], \"message\": r[\"message\"],\n"
             "               \"orders\": len(r[\"orders\"])} for r in runs])"),
    ("code", "sandbox.stop()"),
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
    write("04_paper_trading.ipynb", PAPER)
