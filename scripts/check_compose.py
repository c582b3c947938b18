"""`make lint`'s compose check: every service of compose.yaml, in every profile, is bounded and
hardened. Reads `scripts/compose config --format json` (through bench.compose) with
compose.yaml's own defaults (the variables it interpolates are removed from the environment) and
fails, naming the service and the rule, unless every service has:

- memory and CPU limits and a process limit (`pids_limit` or `deploy.resources.limits.pids`);
- a read-only root file system, except the services in READ_WRITE_ROOT (with the reason);
- all capabilities dropped (`cap_drop: [ALL]`), `no-new-privileges`, and no `privileged`;
- log rotation (json-file or local driver with `max-size` and `max-file`);
- published ports on 127.0.0.1 only (never all interfaces), and no host network.

    python -m scripts.check_compose            check the project's compose.yaml
    python -m scripts.check_compose FILE.json  check a saved `compose config --format json`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import compose

#: Services allowed a writable root file system, and why. None today: every service writes
#: only to tmpfs mounts and volumes.
READ_WRITE_ROOT: dict[str, str] = {}

#: Log drivers that rotate, and the options that bound them.
ROTATING_LOG_DRIVERS = {"json-file", "local"}
ROTATION_OPTIONS = {"max-size", "max-file"}


def compose_config() -> dict[str, Any]:
    """`compose config` of every profile, with compose.yaml's defaults for its variables."""
    # A fixed project name: the check must not depend on the directory or the caller's project.
    return compose.config(("*",), project="modelfleet-check", defaults=True)


def service_violations(name: str, service: dict[str, Any]) -> list[str]:
    """Every rule the service breaks, one readable line each."""
    problems = []
    limits = (service.get("deploy") or {}).get("resources", {}).get("limits") or {}
    if not limits.get("memory") and not service.get("mem_limit"):
        problems.append("no memory limit (deploy.resources.limits.memory)")
    if not limits.get("cpus") and not service.get("cpus"):
        problems.append("no CPU limit (deploy.resources.limits.cpus)")
    if not limits.get("pids") and not service.get("pids_limit"):
        problems.append("no process limit (pids_limit or deploy.resources.limits.pids)")
    if not service.get("read_only") and name not in READ_WRITE_ROOT:
        problems.append(
            "writable root file system (read_only: true, or list it in READ_WRITE_ROOT)"
        )
    if [c.upper() for c in service.get("cap_drop") or []] != ["ALL"]:
        problems.append("capabilities not all dropped (cap_drop: [ALL])")
    if service.get("cap_add"):
        problems.append(f"capabilities added: {service['cap_add']}")
    if service.get("privileged"):
        problems.append("privileged")
    security = {s.replace("=", ":") for s in service.get("security_opt") or []}
    if not security & {"no-new-privileges:true", "no-new-privileges"}:
        problems.append("no-new-privileges not set (security_opt)")
    logging = service.get("logging") or {}
    driver = logging.get("driver", "json-file")
    options = set(logging.get("options") or {})
    if driver not in ROTATING_LOG_DRIVERS or not options >= ROTATION_OPTIONS:
        problems.append("no log rotation (logging: json-file with max-size and max-file)")
    if service.get("network_mode") == "host":
        problems.append("host network")
    # Every `ports` entry publishes, on a random host port when `published` is empty.
    for port in service.get("ports") or []:
        if port.get("host_ip") != "127.0.0.1":
            where = port.get("host_ip") or "every interface"
            problems.append(f"port {port.get('target')} published on {where}, not 127.0.0.1")
    return problems


def violations(config: dict[str, Any]) -> list[str]:
    """Every rule broken by any service, as `service: problem` lines."""
    unknown = set(READ_WRITE_ROOT) - set(config["services"])
    out = [f"{name}: listed in READ_WRITE_ROOT but not a service" for name in sorted(unknown)]
    for name, service in sorted(config["services"].items()):
        out += [f"{name}: {problem}" for problem in service_violations(name, service)]
    return out


def main(argv: list[str]) -> int:
    """Print every violation and return 1 when there is one."""
    config = json.loads(Path(argv[0]).read_text()) if argv else compose_config()
    problems = violations(config)
    for problem in problems:
        print(f"check_compose: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_compose: {len(config['services'])} services bounded and hardened")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
