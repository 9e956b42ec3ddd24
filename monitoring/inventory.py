"""Every metric Drape's services export, read from their code: each ``Counter``, ``Gauge``,
``Histogram`` or ``Summary`` built with a literal name, help text and label names, and the
services whose processes export it. ``docs/metrics.md`` is written from this (by
``tools/monitoring.py``), the rules' tests check that every metric a rule reads is here, and
the Prometheus integration test that every ``drape_*`` family scraped from the running stack
is.

A metric built any other way (a computed name or label list) is refused with its place, so
the list cannot silently fall behind the code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import Histogram

PACKAGE = Path(__file__).resolve().parents[1]
SERVICES = PACKAGE / "services"
RUNTIME = SERVICES / "runtime"
KINDS = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary"}
# The series a family is exposed as, by kind (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


# prometheus_client's, for a histogram that names none (less its +Inf).
DEFAULT_BUCKETS = Histogram.DEFAULT_BUCKETS[:-1]


class InventoryError(ValueError):
    pass


@dataclass(frozen=True)
class Metric:
    name: str  # the family's name, as given to prometheus_client
    kind: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]  # a histogram's upper bounds (+Inf implied)
    module: str  # where it is defined, relative to the package
    services: tuple[str, ...]  # whose processes export it ("*": every service)

    @property
    def series(self) -> tuple[str, ...]:
        """The names it appears under in a scrape."""
        return tuple(self.name + s for s in SUFFIXES[self.kind])


def _literal(node: ast.expr | None, what: str, where: str) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        raise InventoryError(
            f"{where}: the metric's {what} must be a literal, so it can be listed"
        ) from None


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE)) if path.is_relative_to(PACKAGE) else str(path)


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level names bound once to an expression (bucket tuples and the like)."""
    return {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    }


def _definitions(path: Path) -> list[Metric]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    constants = _constants(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in KINDS):  # fmt: skip
            continue
        where = f"{_relative(path)}:{node.lineno}"
        keywords = {k.arg: k.value for k in node.keywords}
        args = [*node.args, *([None] * 3)]
        name = _literal(args[0] or keywords.get("name"), "name", where)
        if not isinstance(name, str) or not name.startswith("drape_"):
            if isinstance(name, str):
                raise InventoryError(f"{where}: {name!r}: Drape's metrics are named drape_*")
            continue  # not a metric (collections.Counter of a generator, and the like)
        doc = _literal(args[1] or keywords.get("documentation"), "help text", where)
        labels = _literal(args[2] or keywords.get("labelnames"), "label names", where) or ()
        if not doc:
            raise InventoryError(f"{where}: {name} has no help text")
        buckets = keywords.get("buckets")
        if isinstance(buckets, ast.Name):
            buckets = constants.get(buckets.id)
        kind = KINDS[node.func.id]
        bounds = _literal(buckets, "buckets", where) if kind == "histogram" else None
        found.append(Metric(name, kind, str(doc), tuple(labels), tuple(bounds or DEFAULT_BUCKETS)
                            if kind == "histogram" else (), _relative(path), ()))  # fmt: skip
    return found


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
    return modules


def _exporters(path: Path) -> tuple[str, ...]:
    """The services whose processes export what ``path`` defines: its own service, or for a
    runtime module, every service when the server itself uses it, else the services that
    import it."""
    relative = path.relative_to(SERVICES)
    if relative.parts[0] != "runtime":
        return (relative.parts[0],)
    module = "drape.services.runtime." + path.stem
    if module in _imports(RUNTIME / "server.py"):
        return ("*",)
    users = {
        p.relative_to(SERVICES).parts[0]
        for p in SERVICES.glob("*/*.py")
        if p.parent.name != "runtime" and module in _imports(p)
    }
    if not users:
        raise InventoryError(f"{path.relative_to(PACKAGE)}: defines metrics no service imports")
    return tuple(sorted(users))


def metrics() -> list[Metric]:
    """Every metric, sorted by name; a name defined twice must be defined alike."""
    found: dict[str, Metric] = {}
    for path in sorted(SERVICES.rglob("*.py")):
        defined = _definitions(path)
        exporters = _exporters(path) if defined else ()
        for metric in (replace(m, services=exporters) for m in defined):
            name = metric.name
            if name in found and (found[name].kind, found[name].labels) != (
                metric.kind,
                metric.labels,
            ):
                raise InventoryError(f"{name} is defined twice, differently: {found[name].module} "
                                     f"and {metric.module}")  # fmt: skip
            found.setdefault(name, metric)
    return sorted(found.values(), key=lambda m: m.name)


def family_of(series: str, known: list[Metric]) -> Metric | None:
    """The metric a scraped series name belongs to, if Drape defines it."""
    for metric in known:
        if series in metric.series:
            return metric
    return None
