"""``make bench``'s verdicts and table: pure functions of the measured results."""

from __future__ import annotations

from typing import Any

from bench.scenarios import BATCH_MODELS

TARGET_VS_CONSTANT = 0.85
TARGET_VS_NAIVE = 3.0
TARGET_ROWS_PER_S = 1_000_000


def checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on the host results."""
    by = {(r["scenario"], r["app"]): r for r in results if r["where"] == "host"}
    out = []
    for (scenario, app), r in by.items():
        if app != "server":
            continue
        if r["rows_per_request"] == 1:
            for base, target in (("constant", TARGET_VS_CONSTANT), ("naive", TARGET_VS_NAIVE)):
                b = by.get((scenario, base))
                if b and b["rps"]:
                    ratio = r["rps"] / b["rps"]
                    out.append(
                        {
                            "check": f"{scenario}: server vs {base}",
                            "value": round(ratio, 3),
                            "target": f">= {target}x",
                            "pass": ratio >= target and r["valid"] and b["valid"],
                        }
                    )
        elif any(f"batch {m} " in scenario for m in BATCH_MODELS):
            out.append(
                {
                    "check": f"{scenario}: server rows/s",
                    "value": round(r["rows_per_s"]),
                    "target": f">= {TARGET_ROWS_PER_S:,}",
                    "pass": r["rows_per_s"] >= TARGET_ROWS_PER_S and r["valid"],
                }
            )
    return out


def table(results: list[dict[str, Any]], cks: list[dict[str, Any]]) -> str:
    """The table ``make bench`` prints: one line per (where, scenario, app), then the targets."""
    by = {(r["where"], r["scenario"], r["app"]): r for r in results}
    head = (
        f"{'where':5s} {'scenario':26s} {'app':9s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'rows/s':>11s} {'/constant':>9s} {'/naive':>7s} {'cpu us/req':>10s}"
    )
    lines = ["", head, "-" * len(head)]
    for r in results:
        c = by.get((r["where"], r["scenario"], "constant"))
        n = by.get((r["where"], r["scenario"], "naive"))
        vs_c = f"{r['rps'] / c['rps']:.2f}x" if c and c["rps"] and r["app"] != "constant" else ""
        vs_n = f"{r['rps'] / n['rps']:.2f}x" if n and n["rps"] and r["app"] == "server" else ""
        flag = "" if r["valid"] else "  INVALID: errors"
        cpu = r["cpu_us_per_request"]
        cpu_text = f"{cpu:10.1f}" if cpu is not None else f"{'-':>10s}"
        lines.append(
            f"{r['where']:5s} {r['scenario']:26s} {r['app']:9s} {r['rps']:9.1f} "
            f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rows_per_s']:11,.0f} {vs_c:>9s} "
            f"{vs_n:>7s} {cpu_text}{flag}"
        )
    lines += ["", "Targets (measured, not asserted):"]
    for ck in cks:
        value = f"{ck['value']:,}" if isinstance(ck["value"], int) else f"{ck['value']}x"
        lines.append(
            f"  {'PASS' if ck['pass'] else 'MISS'}  {ck['check']:50s} {value:>12s}  "
            f"(target {ck['target']})"
        )
    return "\n".join(lines)
