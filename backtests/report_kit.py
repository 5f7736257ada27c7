"""What every HTML report shares: page shell, CSS, pinned matplotlib style, PNG bytes, plotly,
and the caveat about the data (`data_note`, cheap to import: matplotlib loads only to draw).

One place for it, so the backtest, sweep and walk-forward reports look alike and stay
deterministic: PNGs carry no metadata, plotly figures get fixed element ids and plotly.js is
inlined once per page (no CDN: a report opens offline and can be mailed as one file).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Pinned so plots do not change with a user's matplotlibrc.
RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": True,
}

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#222;padding:0 12px}
h1{font-size:22px;margin-bottom:8px}h2{font-size:17px;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:16px 0 4px}
.notes{background:#fff8e1;border:1px solid #f0c36d;border-left:5px solid #e0a800;
padding:10px 14px;margin:12px 0}
.notes ul{margin:0;padding-left:20px}.notes li{margin:3px 0;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e5e5e5;text-align:right}
th{background:#f5f5f5}th.l,td.l{text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.buy{color:#2ca02c;font-weight:600}.sell{color:#d62728;font-weight:600}
.pos{color:#1a7f37}.neg{color:#b00020}.bad{color:#b00020}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.chart{width:100%;min-height:360px;margin:8px 0}
.muted,p.small{color:#666;font-size:12px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
details{margin:10px 0}
"""

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: generated prices, not a real market. Results mean nothing."
SURVIVORSHIP_NOTE = (
    "Universe = the symbols the source has today: survivorship bias flatters results "
    "(delisted names are missing)."
)


def data_note(synthetic: bool) -> str:
    """The caveat every report about this data carries."""
    return SYNTHETIC_NOTE if synthetic else SURVIVORSHIP_NOTE


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG without timestamp/version metadata (byte-stable)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only when drawing

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plotly_js() -> str:
    """plotly.js, minified, for one inline <script> per page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def chart_div(fig: Any, div_id: str, height: int = 380) -> str:
    """A plotly figure as a div plus the script that draws it; needs `plotly_js` on the page.

    Written by hand (not ``fig.to_html``) so the id is fixed and the output deterministic.
    """
    spec = fig.to_plotly_json()
    layout = {**spec.get("layout", {}), "height": height}
    payload = json.dumps(
        {"data": spec.get("data", []), "layout": layout},
        cls=_plotly_encoder(),
        sort_keys=True,
        separators=(",", ":"),
    ).replace("</", "<\\/")
    safe_id = html.escape(div_id)
    return (
        f'<div id="{safe_id}" class="chart" data-chart="{safe_id}"></div>\n'
        f"<script>(function(){{var s={payload};"
        f'Plotly.newPlot("{safe_id}",s.data,s.layout,{json.dumps(PLOTLY_CONFIG)});}})();'
        "</script>\n"
    )


def _plotly_encoder() -> type[json.JSONEncoder]:
    from plotly.utils import PlotlyJSONEncoder

    return PlotlyJSONEncoder


def notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(str(n))}</li>\n" for n in notes)
    return f'<div class="notes"><ul>\n{items}</ul></div>\n'


def page(title: str, body: str, *, notes: Sequence[str] = (), interactive: bool = True) -> str:
    """A whole self-contained HTML document; plotly.js inlined once when `interactive`."""
    t = html.escape(title)
    script = f"<script>{plotly_js()}</script>\n" if interactive else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{t}</title>\n<style>{CSS}</style>\n{script}</head>\n<body>\n"
        f"<h1>{t}</h1>\n{notes_html(notes)}{body}</body>\n</html>\n"
    )
