"""Prometheus console pages written from the Grafana dashboards' own panel definitions.

generate_dashboards.py builds each dashboard once, as Grafana JSON, and hands the same dict to
``page()``: every panel becomes a console panel with the same title, description, width, unit
and PromQL (the `$model` variable included). So the pages served by Prometheus itself
(/consoles/index.html, no Grafana and no registry needed) cannot drift from Grafana.

What is Grafana-specific is translated here, and only here:
- legends `{{label}}` become PromConsole's `[[label]]` (Prometheus renders these files as Go
  templates, where `{{` starts an action);
- the `$model` query variable becomes a `model` URL parameter, whose default is the variable's
  All value (`.*`); its choices come from the variable's `label_values(metric, label)` query,
  run by Prometheus when it renders the page;
- the dashboard's refresh interval and the 24-column grid carry over as they are.

The drawing is done in the browser by monitoring/prometheus/console_libraries/modelfleet.lib
(Prometheus' PromConsole.Graph, Rickshaw and d3 from /classic/static). Each panel element gets
`data-series="N"` once drawn (N series or rows) or `data-error` when its query failed:
tests/stack/test_stack_dashboards.py waits for these.
"""

from __future__ import annotations

import html
import json
import re

#: Pixels per Grafana grid row (Grafana draws h=1 as 30 px).
ROW_PX = 30
_LABEL_VALUES = re.compile(r"^label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*([A-Za-z_]\w*)\s*\)$")
_GRAFANA_LEGEND = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def attr(value: object) -> str:
    """An HTML attribute value (quoted), safe to leave in a Go template."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return '"' + _no_action(html.escape(text, quote=True)) + '"'


def text(value: str) -> str:
    """HTML text, safe to leave in a Go template."""
    return _no_action(html.escape(value, quote=False))


def _no_action(s: str) -> str:
    # `{{` would start a Go template action when Prometheus renders the page: spell it as an
    # entity (the browser reads it back as `{{`).
    return s.replace("{{", "&#123;&#123;")


def console_legend(legend: str) -> str:
    """Grafana's `{{model}} p{{quantile}}` -> PromConsole's `[[model]] p[[quantile]]`."""
    return _GRAFANA_LEGEND.sub(r"[[\1]]", legend)


def variable_query(definition: str) -> tuple[str, str]:
    """`label_values(metric, label)` -> (PromQL listing the label's values, label)."""
    m = _LABEL_VALUES.match(definition.strip())
    if not m:
        raise ValueError(f"unsupported variable query for console pages: {definition!r}")
    metric, label = m.groups()
    return f"group by ({label}) ({metric})", label


def _variable_form(var: dict) -> str:
    """A select for a regex variable; Prometheus fills in the choices when serving the page."""
    promql, label = variable_query(var["definition"])
    name, all_value = var["name"], var["allValue"]
    # Go template: the current value is the URL parameter, else the All value; a value that is
    # neither All nor a listed choice (any regex typed into the URL) is added as its own choice.
    return (
        f'<form class="mf-var" method="get" data-var={attr(name)} data-all={attr(all_value)}>'
        f"<label>{text(var.get('label', name))} "
        f'{{{{ $v := or (index .Params "{name}") "{all_value}" }}}}'
        f'{{{{ $listed := eq $v "{all_value}" }}}}'
        f'<select name="{name}" onchange="this.form.submit()">'
        f'<option value="{html.escape(all_value)}">All</option>'
        f'{{{{ range query "{promql}" | sortByLabel "{label}" }}}}'
        f"{{{{ $x := .Labels.{label} }}}}"
        "<option{{ if eq $x $v }} selected{{ $listed = true }}{{ end }}>{{ $x }}</option>"
        "{{ end }}"
        "{{ if not $listed }}<option selected>{{ $v }}</option>{{ end }}"
        "</select></label></form>"
    )


def _panel(panel: dict) -> str:
    kind = panel["type"]
    width = panel["gridPos"]["w"]
    if kind == "row":
        return f'<h2 class="mf-row">{text(panel["title"])}</h2>'
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    attrs = {
        "data-panel": kind,
        "data-title": panel["title"],
        "data-unit": defaults.get("unit", "short"),
        "data-height": max(panel["gridPos"]["h"] * ROW_PX - 110, 60),
        "style": f"grid-column: span {width}",
    }
    if kind == "timeseries":
        custom = defaults.get("custom", {})
        attrs["data-stack"] = int(custom.get("stacking", {}).get("mode") == "normal")
        for key in ("min", "max"):
            if key in defaults:
                attrs[f"data-{key}"] = defaults[key]
    elif kind == "stat":
        steps = defaults.get("thresholds", {}).get("steps", [])
        attrs["data-thresholds"] = [[s["color"], s["value"]] for s in steps]
    elif kind != "table":
        raise ValueError(f"no console rendering for Grafana panel type {kind!r}")
    head = " ".join(f"{k}={attr(v)}" for k, v in attrs.items())
    desc = panel.get("description", "")
    targets = "".join(
        f'<code class="mf-target" data-expr={attr(t["expr"])} '
        f"data-legend={attr(console_legend(t.get('legendFormat', '')))}>"
        f"{text(t['expr'])}</code>"
        for t in panel["targets"]
    )
    return (
        f'<section class="mf-panel" {head}>'
        f"<h3>{text(panel['title'])}</h3>"
        + (f'<p class="mf-desc" title={attr(desc)}>{text(desc)}</p>' if desc else "")
        + '<div class="mf-body"></div>'
        f"<details><summary>PromQL</summary>{targets}</details>"
        "</section>"
    )


def _nav(pages: list[tuple[str, dict]], current: str) -> str:
    links = ['<a href="index.html">Dashboards</a>']
    for filename, dash in pages:
        cls = ' class="mf-current"' if filename == current else ""
        links.append(f'<a href="{filename}"{cls}>{text(_short_title(dash))}</a>')
    return '<nav class="mf-nav">' + "".join(links) + "</nav>"


def _short_title(dash: dict) -> str:
    return dash["title"].split(" / ", 1)[-1]


def page(dash: dict, filename: str, pages: list[tuple[str, dict]]) -> str:
    """The console page (a Go template Prometheus renders) of one Grafana dashboard."""
    variables = "".join(_variable_form(v) for v in dash.get("templating", {}).get("list", []))
    body = "\n".join(_panel(p) for p in dash["panels"])
    return (
        "{{/* Generated by monitoring/grafana/generate_dashboards.py from the same panel"
        " definitions as the Grafana dashboard " + dash["uid"] + ": do not edit. */}}\n"
        f'{{{{ template "mf_head" "{_short_title(dash)}" }}}}\n'
        f"<body data-uid={attr(dash['uid'])} data-refresh={attr(dash.get('refresh', ''))}>\n"
        f"{_nav(pages, filename)}\n"
        f'<header class="mf-header"><h1>{text(dash["title"])}</h1>'
        f"<p>{text(dash.get('description', ''))}</p>"
        f'{variables}{{{{ template "mf_timecontrol" }}}}</header>\n'
        f'<main class="mf-grid">\n{body}\n</main>\n'
        '{{ template "mf_script" }}\n'
        "</body></html>\n"
    )


def index(pages: list[tuple[str, dict]]) -> str:
    """The console index: one link per dashboard page."""
    items = "\n".join(
        f'<li><a class="mf-dashboard" href="{filename}">{text(dash["title"])}</a>'
        f" <span>{text(dash.get('description', ''))}</span>"
        f" <small>({sum(p['type'] != 'row' for p in dash['panels'])} panels;"
        f" Grafana uid <code>{text(dash['uid'])}</code>)</small></li>"
        for filename, dash in pages
    )
    return (
        "{{/* Generated by monitoring/grafana/generate_dashboards.py: do not edit. */}}\n"
        '{{ template "mf_head" "Dashboards" }}\n'
        "<body>\n"
        f"{_nav(pages, 'index.html')}\n"
        '<header class="mf-header"><h1>ModelFleet dashboards</h1>'
        "<p>Served by Prometheus from the stack's own image. The panels and queries are the"
        " ones of the Grafana dashboards (<code>make dashboards</code>), generated from the"
        " same definitions.</p></header>\n"
        f'<main><ul class="mf-index">\n{items}\n</ul>\n'
        '<p>Also: <a href="{{ pathPrefix }}/alerts">alerts</a>,'
        ' <a href="{{ pathPrefix }}/targets">targets</a>,'
        ' <a href="{{ pathPrefix }}/graph">ad-hoc queries</a>.</p></main>\n'
        "</body></html>\n"
    )
