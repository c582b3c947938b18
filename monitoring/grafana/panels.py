"""The building blocks of the ModelFleet dashboards (generate_dashboards.py): Grafana panels,
their grid layout and the dashboard around them, with the conventions of the module docstring
there. Standard library only."""

from __future__ import annotations

from pathlib import Path

MONITORING = Path(__file__).resolve().parents[1]
OUT_DIR = MONITORING / "grafana" / "dashboards"
CONSOLES_DIR = MONITORING / "prometheus" / "consoles"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Grafana 10's dashboard schema; older Grafanas migrate it on load.
SCHEMA_VERSION = 38
WIDTH = 24  # Grafana's grid is 24 units wide.

MODEL_VAR = {
    "name": "model",
    "label": "Model",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {"query": "label_values(modelfleet_model_info, model)", "refId": "model"},
    "definition": "label_values(modelfleet_model_info, model)",
    "refresh": 2,  # on time range change: models come and go with deployments
    "includeAll": True,
    "allValue": ".*",
    "multi": True,
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "sort": 1,
}

REPLICA_JOIN = '* on (instance) group_left (replica) modelfleet_replica_info{job="model"}'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    """One query of a panel: a range query, or with ``instant`` an instant one as a table."""
    t = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
    if instant:
        t.update({"instant": True, "range": False, "format": "table"})
    else:
        t.update({"range": True})
    return t


def timeseries(title, targets, unit="short", description="", w=12, h=8, max_=None, stack=False):
    """A graph of ``targets`` over time, from 0 (stacked with ``stack``), legend as a table."""
    defaults = {
        "unit": unit,
        "min": 0,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_w": w,
        "_h": h,
    }


def stat(title, expr, unit="short", description="", thresholds=None, w=6, h=4, legend=""):
    """One number, its background coloured by ``thresholds`` (green by default)."""
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
        "_w": w,
        "_h": h,
    }


def table(title, expr, description="", w=12, h=8):
    """An instant query's series as table rows, their labels as columns."""
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}},
            }
        ],
        "_w": w,
        "_h": h,
    }


def row(title):
    """A full-width heading that starts a new group of panels."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": WIDTH, "_h": 1}


def red(value):
    """Thresholds: green below `value`, red from it."""
    return [{"color": "green", "value": None}, {"color": "red", "value": value}]


def layout(panels):
    """Assign ids and grid positions left to right, top to bottom."""
    x = y = row_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > WIDTH:
            x, y, row_h = 0, y + row_h, 0
        p = {"id": pid, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **p}
        out.append(p)
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return out


def dashboard(uid, title, description, panels, variables=()):
    """A whole dashboard around ``panels`` (laid out by :func:`layout`), linked to the others."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["modelfleet"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "tags": ["modelfleet"],
                "asDropdown": True,
                "title": "ModelFleet",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": list(variables)},
        "panels": layout(list(panels)),
    }


M = 'model=~"$model"'
