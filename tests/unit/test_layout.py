"""The package's layout: imports run only downwards through the stages, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gridedge"

# Lowest first. A module may import from its own stage or a lower one, never a higher one.
STAGES: tuple[tuple[str, ...], ...] = (
    (
        "gridedge.errors",
        "gridedge.model",
        "gridedge.log",
        "gridedge.histogram",
        "gridedge.signals",
        "gridedge.channels",
        "gridedge.drivers",
        "gridedge.tomlread",
        "gridedge",
    ),
    ("gridedge.links", "gridedge.simulator"),
    ("gridedge.poll",),
    ("gridedge.analytics",),
    ("gridedge.outbox",),
    ("gridedge.forward",),
    ("gridedge.ops",),
    # config composes every stage's settings, so it sits just below the wiring that uses it.
    ("gridedge.config",),
    ("gridedge.daemon",),
    ("gridedge.bench",),
    ("gridedge.cli", "gridedge.__main__"),
)
MAX_ROOT_MODULES = 12
MAX_LINES = 400


def module_name(path: Path) -> str:
    """The dotted module name of a file in the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int:
    """The index of the stage ``module`` belongs to (the longest matching prefix wins)."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} belongs to no stage: add it to STAGES"
    return best


def imports_of(path: Path) -> set[str]:
    """Every gridedge module ``path`` imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gridedge"))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("gridedge")
        ):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """The import graph of the package, restricted to modules that exist."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}


def test_no_import_runs_from_a_lower_stage_to_a_higher_one() -> None:
    """Leaves < links/simulator < poll < analytics < outbox < forward < ops < daemon < cli."""
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if stage_of(target) > stage_of(module)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    """Following imports never leads back to where it started."""
    edges = graph()
    # Importing a package runs its __init__: an edge to a.b.c also passes through a and a.b.
    done: set[str] = set()
    on_path: list[str] = []

    def visit(node: str) -> None:
        if node in on_path:
            cycle = [*on_path[on_path.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        on_path.append(node)
        for target in sorted(edges.get(node, ())):
            if target != node:
                visit(target)
        on_path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def test_the_package_root_holds_at_most_twelve_modules() -> None:
    """Stages live in packages; only the leaves, config, poll and daemon sit at the root."""
    root = sorted(p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_module_is_longer_than_four_hundred_lines() -> None:
    """A module past 400 lines is a prompt to reshape it."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_ops_and_daemon_use_no_any() -> None:
    """Reporting reads typed state: no ``Any`` in ops/ or the daemon's wiring."""
    paths = [*sorted((PACKAGE / "ops").rglob("*.py")), PACKAGE / "daemon.py"]
    offenders = [str(p.relative_to(PACKAGE)) for p in paths if "Any" in p.read_text("utf-8")]
    assert offenders == []


# Each third-party library is spoken to by its adapter modules only (ARCHITECTURE.md, "Who owns
# which library"); a prefix ending in "/" allows a whole package (numpy is the numeric core).
ADAPTERS: dict[str, tuple[str, ...]] = {
    "pymodbus": ("links/modbus/pymodbus_client.py", "links/modbus/server.py"),
    "serial": (),
    "aiosqlite": ("outbox/database.py",),
    # bench/consumer.py measures delivery from outside the daemon, as a consumer would.
    "paho": ("forward/mqtt.py", "bench/consumer.py"),
    "river": ("analytics/river_models.py",),
    "prometheus_client": ("ops/metrics.py",),
    "aiohttp": ("ops/http.py",),
    "structlog": ("log.py",),
    # numpy is a computing library: the analytics, the simulator, and the shortest float32 text.
    "numpy": ("analytics/", "simulator/", "links/modbus/precision.py"),
}


def third_party_imports(path: Path) -> set[str]:
    """The top-level names of the libraries in ADAPTERS that ``path`` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & ADAPTERS.keys()


def test_each_library_is_imported_by_its_adapters_only() -> None:
    """A library imported outside its adapter spreads its types and errors through the code."""
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for library in sorted(third_party_imports(path)):
            allowed = ADAPTERS[library]
            if not any(where == a or (a.endswith("/") and where.startswith(a)) for a in allowed):
                stray.append(f"{where} imports {library}")
    assert stray == []
