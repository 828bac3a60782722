"""Interactive figures: Vega-Lite specs drawn by Vega-Embed, inlined once per report.

Why Vega-Lite: its JavaScript (Vega, Vega-Lite and Vega-Embed, bundled offline by the
`vl-convert-python` wheel) costs about 0.9 MB per report, where Plotly's plotly.min.js costs
4.8 MB and would leave no room under the 5 MB a report may weigh. A spec is declarative JSON,
so hover tooltips, legend toggles and input-bound parameters (log/linear, x axis, seeds) need no
hand-written drawing code, and Vega-Embed's menu saves every figure as SVG or PNG offline.

Data travel as columns (`{"columns": {name: [values...]}}`, numbers to 4 significant digits)
and become records in the page's own small script, which keeps the page a fraction of the size
record-per-row JSON would take. `STATIC` (set by `build_report(static=True)`) turns every
figure back into its matplotlib SVG, with no JavaScript at all.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

STATIC: contextvars.ContextVar[bool] = contextvars.ContextVar("optiscope_report_static", default=False)
_USED: contextvars.ContextVar[list[int]] = contextvars.ContextVar("optiscope_report_figures")
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an identifier only: never fetched
WIDTH, HEIGHT = 420, 260
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]  # matplotlib's tab10, as the static figures use


def _counter() -> list[int]:
    try:
        return _USED.get()
    except LookupError:
        box = [0]
        _USED.set(box)
        return box


def used() -> bool:
    """Whether this report drew an interactive figure (then the page carries the library)."""
    return _counter()[0] > 0


def reset() -> None:
    _USED.set([0])


@functools.cache
def library() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script, from the vl-convert-python wheel (offline).

    Bundling takes a second or more, so the script is kept in the cache directory
    (OPTISCOPE_CACHE, else ~/.cache/optiscope), keyed by the wheel's version; a cache that cannot
    be written is skipped."""
    import vl_convert

    version = getattr(vl_convert, "__version__", "") or vl_convert.get_vega_version()
    cache = Path(os.environ.get("OPTISCOPE_CACHE") or Path.home() / ".cache" / "optiscope")
    path = cache / f"vega-bundle-{version}.js"
    try:
        text = path.read_text()
        if text:
            return text
    except OSError:
        pass
    text = vl_convert.javascript_bundle()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass
    return text


INIT = r"""
(function () {
  function records(cols) {
    var names = Object.keys(cols), n = names.length ? cols[names[0]].length : 0, out = new Array(n);
    for (var i = 0; i < n; i++) { var r = {}; for (var k = 0; k < names.length; k++) r[names[k]] = cols[names[k]][i]; out[i] = r; }
    return out;
  }
  function expand(spec) {  // every data.columns of the spec and its layers becomes records
    if (spec.data && spec.data.columns) spec.data = {values: records(spec.data.columns)};
    (spec.layer || []).forEach(expand);
  }
  window.optiscopeViews = [];
  window.optiscopeDrawn = 0;
  var opts = {renderer: "svg", actions: {export: true, source: false, compiled: false, editor: false}};
  function draw(node) {
    if (node.dataset.drawn) return;
    node.dataset.drawn = "1";
    var spec = JSON.parse(node.textContent);
    expand(spec);
    var target = node.parentNode.querySelector("div.vega");
    window.vegaEmbed(target, spec, opts).then(function (r) {
      var boxes = node.parentNode.querySelectorAll(".toggles input[data-cell]");
      boxes.forEach(function (box) {
        box.addEventListener("change", function () {
          var hidden = [];
          boxes.forEach(function (b) { if (!b.checked) hidden.push(b.dataset.cell); });
          r.view.signal("hidden_cells", hidden).runAsync();
        });
      });
      window.optiscopeViews.push(r.view); window.optiscopeDrawn++;
    })
      .catch(function (e) { target.textContent = "figure could not be drawn: " + e; window.optiscopeDrawn++; });
  }
  // Figures are drawn as they come near the screen, so a long report opens at once.
  window.optiscopeDrawAll = function () { document.querySelectorAll("script.vega-spec").forEach(draw); };
  var specs = document.querySelectorAll("script.vega-spec");
  if (!("IntersectionObserver" in window)) { window.optiscopeDrawAll(); return; }
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { seen.unobserve(e.target); draw(e.target.parentNode.querySelector("script.vega-spec")); } });
  }, {rootMargin: "600px 0px"});
  specs.forEach(function (node) { seen.observe(node.parentNode); });
})();
"""


def page_script() -> str:
    """The <script> elements the page needs once: the library and the code that draws each figure."""
    lib = library().replace("</script", "<\\/script")
    return f"<script>{lib}</script>\n<script>{INIT}</script>"


def _round(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return None
        return float(f"{f:.4g}")
    if isinstance(v, np.integer):
        return int(v)
    return v


def columns(**cols: Sequence[Any]) -> dict[str, Any]:
    """Data as columns, numbers to 4 significant digits (NaN/inf: null)."""
    return {"columns": {k: [_round(x) for x in v] for k, v in cols.items()}}


def vega_figure(spec: dict[str, Any], static: Callable[[], str], caption: str = "", kind: str = "") -> Markup:
    """The figure: an interactive Vega-Lite view, or `static()` (matplotlib SVG) under STATIC.

    `kind` (curves, distribution, matrix, sensitivity) is written as data-kind for tests and styles."""
    from optiscope.report.html import figure

    if STATIC.get():
        return figure(static(), caption)
    box = _counter()
    box[0] += 1
    spec = {"$schema": SCHEMA, **spec}
    # inside <script>, '<' and '&' are written as JSON escapes so no text can end or open a tag
    text = json.dumps(spec, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    cap = Markup("<figcaption>{}</figcaption>").format(caption) if caption else ""
    toggles = spec.get("usermeta", {}).get("toggles") or []
    legend = Markup("").join(
        Markup("<label><input type='checkbox' checked data-cell='{}'><span class='swatch' "
               "style='background:{}'></span>{}</label>").format(label, colour, label)
        for label, colour in toggles)
    side = Markup("<div class='toggles'>{}</div>").format(legend) if toggles else ""
    return Markup(
        "<figure class='plot interactive' data-kind='{}'><div class='row'><div class='vega'></div>{}</div>"
        "<script type='application/json' class='vega-spec'>{}</script>{}</figure>"
    ).format(kind, side, Markup(text), cap)


def _color(labels: Sequence[str]) -> dict[str, Any]:
    return {"domain": list(labels), "range": [PALETTE[i % len(PALETTE)] for i in range(len(labels))]}


def _legend_right() -> dict[str, Any]:
    return {"orient": "right", "labelLimit": 220, "title": None}


def _y_log_param(default: bool) -> dict[str, Any]:
    return {"name": "ylog", "value": default, "bind": {"input": "checkbox", "name": "log y axis "}}


Y_LABEL = "ylog ? format(pow(10, datum.value), '.3~g') : format(datum.value, '.4~g')"


def learning_curves(
    title: str,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    log_y: bool,
    x_axes: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
    max_points: int = 120,
    markers: bool = False,
    seed_ids: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Median and IQR band per cell, every seed on demand, hover values, show/hide per cell.

    `series`: (cell, steps, values[seed, step]); `x_axes`: other x axes (name -> cell ->
    (steps, value): gradient evaluations, wall time), interpolated at the curve's steps.
    """
    x_names = ["step"] + [k for k in (x_axes or {}) if x_axes and x_axes[k]]
    med: dict[str, list[Any]] = {k: [] for k in ("cell", "value", "q25", "q75", *x_names)}
    seeds: dict[str, list[Any]] = {k: [] for k in ("cell", "seed", "value", "anchor", *x_names)}
    labels = []
    for n, (label, steps, values) in enumerate(series):
        if values.size == 0 or not np.isfinite(values).any():
            continue
        ids = list(seed_ids[n]) if seed_ids is not None and n < len(seed_ids) else list(range(values.shape[0]))
        labels.append(label)
        keep = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), max_points)).round().astype(int))
        v = np.where(np.isfinite(values), values, np.nan)[:, keep]
        with np.errstate(all="ignore"), _quiet():
            m = np.nanmedian(v, axis=0)
            q1, q3 = np.nanpercentile(v, [25, 75], axis=0)
        xs = {"step": np.asarray(steps)[keep]}
        for k in x_names[1:]:
            got = (x_axes or {})[k].get(label)
            xs[k] = np.interp(xs["step"], *got) if got is not None else np.full(len(keep), np.nan)
        for j in range(len(keep)):
            if not np.isfinite(m[j]):
                continue
            med["cell"].append(label)
            med["value"].append(m[j])
            med["q25"].append(q1[j])
            med["q75"].append(q3[j])
            for k in x_names:
                med[k].append(xs[k][j])
        anchored = False
        for i in range(v.shape[0]):
            for j in range(len(keep)):
                if np.isfinite(v[i, j]):
                    seeds["cell"].append(label)
                    seeds["seed"].append(ids[i] if i < len(ids) else i)
                    seeds["value"].append(v[i, j])
                    seeds["anchor"].append(0 if anchored else 1)  # kept when seeds are off: no empty layer
                    anchored = True
                    for k in x_names:
                        seeds[k].append(xs[k][j])
    params: list[dict[str, Any]] = [_y_log_param(log_y)]
    x_title = "step"
    if len(x_names) > 1:
        params.append({"name": "xaxis", "value": "step",
                       "bind": {"input": "select", "options": x_names, "name": "x axis "}})
        x_expr = "datum[xaxis]"
        x_title = " / ".join(x_names) + " (see 'x axis' below)"
    else:
        params.append({"name": "xaxis", "value": "step"})
        x_expr = "datum.step"
    params.append({"name": "seeds", "value": False, "bind": {"input": "checkbox", "name": "every seed "}})
    calc = [
        {"filter": "!ylog || datum.value > 0"},
        {"calculate": x_expr, "as": "x"},
        {"filter": "isValid(datum.x) && isFinite(datum.x)"},
        {"calculate": "ylog ? log(datum.value) / LN10 : datum.value", "as": "y"},
    ]
    band_calc = [
        {"calculate": "ylog ? (datum.q25 > 0 ? log(datum.q25) / LN10 : null) : datum.q25", "as": "y25"},
        {"calculate": "ylog ? (datum.q75 > 0 ? log(datum.q75) / LN10 : null) : datum.q75", "as": "y75"},
    ]
    visible = {"test": "indexof(hidden_cells, datum.cell) < 0"}
    params.append({"name": "hidden_cells", "value": []})
    x = {"field": "x", "type": "quantitative", "title": x_title, "scale": {"zero": False}}
    y = {"field": "y", "type": "quantitative", "title": title, "scale": {"zero": False},
         "axis": {"labelExpr": Y_LABEL}}
    # The legend is the page's own (a checkbox per cell beside the plot, see `vega_figure`): it
    # sets `hidden_cells`, which every layer's opacity reads. Vega-Lite's legend binding is lost
    # when several layers share the colour legend, as they do here.
    color = {"field": "cell", "type": "nominal", "scale": _color(labels), "legend": None}
    tooltip = [{"field": "cell"}, {"field": "x", "title": "x", "format": ".4~g"},
               {"field": "value", "title": f"median {title}", "format": ".4~g"},
               {"field": "q25", "title": "25%", "format": ".4~g"},
               {"field": "q75", "title": "75%", "format": ".4~g"}]
    layers = [
        {"data": columns(**seeds), "transform": [{"filter": "seeds || datum.anchor"}, *calc],
         "mark": {"type": "line", "strokeWidth": 0.7, "opacity": 0.45},
         "encoding": {"x": x, "y": y, "color": color, "detail": {"field": "seed"},
                      "opacity": {"condition": {"test": f"seeds && {visible['test']}", "value": 0.45},
                                  "value": 0},
                      "tooltip": [{"field": "cell"}, {"field": "seed"}, {"field": "value", "format": ".4~g"}]}},
        {"transform": [*calc, *band_calc], "mark": {"type": "area", "opacity": 0.18},
         "encoding": {"x": x, "y": {"field": "y25", "type": "quantitative"}, "y2": {"field": "y75"},
                      "color": color, "opacity": {"condition": {**visible, "value": 0.18}, "value": 0}}},
        {"transform": calc, "mark": {"type": "line", "strokeWidth": 1.8, "point": markers},
         "encoding": {"x": x, "y": y, "color": color,
                      "opacity": {"condition": {**visible, "value": 1}, "value": 0}}},
        {"transform": calc, "mark": {"type": "point", "filled": True, "size": 30},
         "params": [{"name": "hover", "select": {"type": "point", "on": "pointerover", "nearest": True,
                                                   "clear": "pointerout"}}],
         "encoding": {"x": x, "y": y, "color": color, "tooltip": tooltip,
                      "opacity": {"condition": {"test": {"and": [{"param": "hover", "empty": False}, visible["test"]]},
                                                "value": 1}, "value": 0}}},
    ]
    return {
        "title": {"text": f"{title}: median and IQR over seeds",
                  "subtitle": "hover for values; untick a cell beside the plot to hide it", "fontSize": 12},
        "width": WIDTH, "height": HEIGHT, "params": params, "data": columns(**med), "layer": layers,
        "usermeta": {"toggles": [[label, PALETTE[i % len(PALETTE)]] for i, label in enumerate(labels)]},
    }


def distributions(title: str, groups: Sequence[tuple[str, np.ndarray]], *, log_y: bool,
                  seeds: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Every seed a point (hover: its seed) over a box plot per cell; not-finished seeds counted."""
    cell, seed, value, jitter = [], [], [], []
    rng = np.random.default_rng(0)
    names = []
    for g, (label, vals) in enumerate(groups):
        missing = int((~np.isfinite(vals)).sum())
        name = f"{label} ({missing} not finished)" if missing else label
        names.append(name)
        ids = list(seeds[g]) if seeds is not None else list(range(vals.size))
        for i, v in enumerate(vals):
            if np.isfinite(v) and (not log_y or v > 0):
                cell.append(name)
                seed.append(ids[i] if i < len(ids) else i)
                value.append(v)
                jitter.append(rng.uniform(-0.3, 0.3))
    y = {"field": "value", "type": "quantitative", "title": f"final {title}",
         "scale": {"type": "log", "nice": False, "padding": 8} if log_y else {"zero": False}}
    x = {"field": "cell", "type": "nominal", "title": None, "scale": {"domain": names},  # every cell, even empty
         "axis": {"labelAngle": -30, "labelLimit": 160}}
    color = {"field": "cell", "type": "nominal", "scale": _color(names), "legend": None}
    return {
        "title": {"text": f"final {title}: every seed a point",
                  "subtitle": "hover a point for its seed" + (" (log axis)" if log_y else ""), "fontSize": 12},
        "width": {"step": 70}, "height": HEIGHT, "data": columns(cell=cell, seed=seed, value=value, jitter=jitter),
        "layer": [
            {"mark": {"type": "boxplot", "extent": "min-max", "opacity": 0.25, "median": {"color": "black"}},
             "encoding": {"x": x, "y": y, "color": color}},
            {"mark": {"type": "point", "filled": True, "size": 36, "opacity": 0.85},
             "encoding": {"x": x, "xOffset": {"field": "jitter", "type": "quantitative",
                                              "scale": {"domain": [-0.5, 0.5]}},
                          "y": y, "color": color,
                          "tooltip": [{"field": "cell"}, {"field": "seed"},
                                      {"field": "value", "title": title, "format": ".4~g"}]}},
        ],
    }


def significance_matrix(title: str, labels: Sequence[str], p_better: np.ndarray, p_adjusted: np.ndarray) -> dict[str, Any]:
    """P(row better than column) as colour, Holm p on hover and as stars."""
    row, col, eff, padj, text = [], [], [], [], []
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            if i == j or not np.isfinite(p_better[i, j]):
                continue
            p = p_adjusted[i, j]
            stars = "" if not np.isfinite(p) else "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
            row.append(a)
            col.append(b)
            eff.append(p_better[i, j])
            padj.append(p)
            text.append(f"{p_better[i, j]:.2f}{stars}")
    enc_x = {"field": "b", "type": "nominal", "sort": list(labels), "title": "column",
             "axis": {"labelAngle": -30, "labelLimit": 140}}
    enc_y = {"field": "a", "type": "nominal", "sort": list(labels), "title": "row", "axis": {"labelLimit": 180}}
    return {
        "title": {"text": f"{title}: P(row better than column), Holm-adjusted p",
                  "subtitle": "* < 0.05, ** < 0.01, *** < 0.001; hover a square for the numbers", "fontSize": 12},
        "width": {"step": 56}, "height": {"step": 30},
        "data": columns(a=row, b=col, p_better=eff, p_holm=padj, text=text),
        "layer": [
            {"mark": "rect", "encoding": {
                "x": enc_x, "y": enc_y,
                "color": {"field": "p_better", "type": "quantitative", "title": "P(row better)",
                          "scale": {"scheme": "redblue", "domain": [0, 1]}},
                "tooltip": [{"field": "a", "title": "row"}, {"field": "b", "title": "column"},
                            {"field": "p_better", "title": "P(row better)", "format": ".3~g"},
                            {"field": "p_holm", "title": "p (Holm)", "format": ".3~g"}]}},
            {"mark": {"type": "text", "fontSize": 10}, "encoding": {
                "x": enc_x, "y": enc_y, "text": {"field": "text"},
                "color": {"condition": {"test": "abs(datum.p_better - 0.5) > 0.3", "value": "white"},
                          "value": "black"}}},
        ],
    }


def tuning_sensitivity(title: str, xlabel: str, ylabel: str, cols: dict[str, list[Any]], dims: Sequence[str],
                       *, log_x: bool, goal: str) -> dict[str, Any]:
    """Every trial a point (median, IQR bar) against one tuned dimension; hover: the trial's
    number, every parameter it ran with and its score; the selected trial starred; a trial that
    diverged or failed is drawn at the worst edge (top when minimising)."""
    finite = [v for v in cols["median"] if v is not None]
    log_y = bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 10
    tooltip = [{"field": "trial"}, *({"field": d, "format": ".4~g"} if _numeric(cols[d]) else {"field": d}
                                     for d in dims),
               {"field": "median", "title": f"median {ylabel.split(':')[0]}", "format": ".4~g"},
               {"field": "finished"}]
    x = {"field": "x", "type": "quantitative", "title": xlabel, "scale": {"type": "log"} if log_x else {"zero": False}}
    y = {"field": "median", "type": "quantitative", "title": ylabel,
         "scale": {"type": "log"} if log_y else {"zero": False}}
    labels = list(dict.fromkeys(cols["series"]))
    color = {"field": "series", "type": "nominal", "scale": _color(labels), "legend": _legend_right()}
    edge = "0" if goal == "min" else "height"
    spec = {
        "title": {"text": title, "subtitle": "hover a trial for its parameters; star: selected", "fontSize": 12},
        "width": WIDTH - 60, "height": HEIGHT, "data": columns(**cols),
        "layer": [
            {"transform": [{"filter": "!datum.worst"}], "mark": {"type": "rule", "opacity": 0.6},
             "encoding": {"x": x, "y": {"field": "low", "type": "quantitative", "scale": y["scale"]},
                          "y2": {"field": "high"}, "color": color}},
            {"transform": [{"filter": "!datum.worst"}], "mark": {"type": "point", "filled": True, "size": 45},
             "encoding": {"x": x, "y": y, "color": color, "tooltip": tooltip}},
            {"transform": [{"filter": "datum.selected && !datum.worst"}],
             "mark": {"type": "point", "shape": "diamond", "size": 220, "filled": False, "color": "black",
                      "strokeWidth": 1.5},
             "encoding": {"x": x, "y": y, "tooltip": tooltip}},
            {"transform": [{"filter": "datum.worst"}],
             "mark": {"type": "point", "shape": "cross", "size": 80, "color": "crimson", "y": {"expr": edge}},
             "encoding": {"x": x, "tooltip": [*tooltip[:-2], {"field": "finished"}]}},
        ],
    }
    # a layer with no rows would leave its scales an empty (infinite) extent: leave it out
    if not any(cols["worst"]):
        spec["layer"].pop(3)
    if not any(s and not w for s, w in zip(cols["selected"], cols["worst"], strict=True)):
        spec["layer"].pop(2)
    if all(cols["worst"]):
        spec["layer"] = spec["layer"][-1:]
    return spec


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)
