"""The import graph of the ``ppgan`` package, read from its source with ``ast`` (nothing is imported).

Every import counts, at module scope and inside functions (a lazy import still couples two
packages; it only hides the coupling from a load-time check), and so does a module named by a
string given to ``importlib.import_module``. ``tests/integration/test_layers.py`` fails on the
violations found here; ``benchmarks/code_metrics.py`` counts them.

The intended architecture is one order of layers (``LAYERS``, lowest first): a subpackage may import
from the layers below its own and not from its own layer's peers or from above. The engine is
stricter still (``ENGINE_MAY_IMPORT``): the trainer knows models, solver, datasets and its own hooks,
nothing of the lip-sync evaluation, the metrics or the applications.
"""

import ast
import os
from dataclasses import dataclass

PACKAGE = "ppgan"
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)

# Lowest first; packages in one tuple are peers that must not import each other. Why this order:
# utils are leaf helpers (config, io, registry, weights files); data is the data contract every
# layer above agrees on (face size, mel windows); modules are the network building blocks;
# inference runs an exported Paddle program and knows no network; metrics measure (LSE protocol,
# image metrics, the scorers' embedding runner) and know no trained network of ours; models and
# face detectors are the networks, the solver builds optimizers for them; datasets read corpora;
# the engine trains a model, and the offline corpus tools write corpora (preprocessing detects
# faces; both use the datasets' file formats, neither needs the other); apps compose everything.
LAYERS = (
    ("utils",),
    ("data",),
    ("modules",),
    ("inference",),
    ("metrics",),
    ("models", "faceutils", "solver"),
    ("datasets",),
    ("engine", "corpus_tools"),
    ("apps",),
)
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# The subpackages the engine may import besides its own modules.
ENGINE_MAY_IMPORT = frozenset({"utils", "data", "modules", "models", "solver", "datasets"})


@dataclass(frozen=True)
class ImportEdge:
    """One import statement from module ``source`` to module ``target`` (dotted names)."""
    source: str
    target: str
    line: int
    scope: str  # "module" or "function"

    def __str__(self):
        return f"{self.source} -> {self.target}"


def package_modules(package_dir=PACKAGE_DIR):
    """{dotted module name: file path} of every module of the package (packages as their __init__)."""
    modules = {}
    root = os.path.dirname(package_dir)
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in sorted(files):
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = os.path.join(folder, name)
    return modules


def subpackage(module):
    """``ppgan.models.generators.wav2lip`` -> ``models``; the package root itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(module, is_package, node, known):
    """The ppgan modules an import node names, as dotted names present in ``known``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] != PACKAGE:
        return []
    # ``from pkg import name`` imports the submodule pkg.name when there is one, else pkg itself.
    targets = [f"{prefix}.{alias.name}" for alias in node.names if f"{prefix}.{alias.name}" in known]
    if len(targets) < len(node.names):
        targets.append(prefix)
    return targets


class _ImportCollector(ast.NodeVisitor):
    """Collects the import nodes of one module with their scope."""

    def __init__(self):
        self.found = []  # (node, scope)
        self.depth = 0

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        self.found.append((node, "function" if self.depth else "module"))

    visit_ImportFrom = visit_Import

    def visit_Call(self, node):
        # importlib.import_module("ppgan.x") / __import__("ppgan.x"): an import by name string.
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__"):
            self.found.append((node, "function" if self.depth else "module"))
        self.generic_visit(node)


def _string_targets(tree, known):
    """Dotted ppgan module names written as string constants (for importlib-based imports)."""
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known
            and node.value.startswith(PACKAGE + ".")}


def import_edges(package_dir=PACKAGE_DIR):
    """Every import edge between modules of the package, sorted by source then line.

    Returns:
        list of ImportEdge (a module importing itself, e.g. ``from . import x`` in ``x``'s own
        package ``__init__``, is kept: it is an edge to the submodule).
    """
    known = package_modules(package_dir)
    edges = set()
    for module, path in known.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        is_package = path.endswith("__init__.py")
        collector = _ImportCollector()
        collector.visit(tree)
        by_name = None
        for node, scope in collector.found:
            if isinstance(node, ast.Call):
                # The named module may be passed as a variable; take every ppgan module named by a
                # string in this file, at the call's line and scope.
                by_name = by_name if by_name is not None else _string_targets(tree, known)
                targets = sorted(by_name)
            else:
                targets = _resolve(module, is_package, node, known)
            for target in targets:
                if target in known and target != module:
                    edges.add(ImportEdge(module, target, node.lineno, scope))
    return sorted(edges, key=lambda e: (e.source, e.line, e.target))


def layer_violations(edges):
    """The edges that break the layer rules: to a higher layer, to a peer of the same layer, or
    from the engine to a subpackage outside ``ENGINE_MAY_IMPORT``.

    Returns:
        list of (ImportEdge, reason str).
    """
    bad = []
    for edge in edges:
        src, dst = subpackage(edge.source), subpackage(edge.target)
        if not src or src == dst:
            continue  # the package root re-exports; inside one subpackage anything goes
        if dst not in LAYER_OF or src not in LAYER_OF:
            bad.append((edge, f"'{src if src not in LAYER_OF else dst}' has no place in LAYERS"))
        elif LAYER_OF[dst] > LAYER_OF[src]:
            bad.append((edge, f"upward: {src} (layer {LAYER_OF[src]}) imports {dst} "
                              f"(layer {LAYER_OF[dst]})"))
        elif LAYER_OF[dst] == LAYER_OF[src]:
            bad.append((edge, f"sideways: {src} and {dst} are peers of one layer"))
        elif src == "engine" and dst not in ENGINE_MAY_IMPORT:
            bad.append((edge, f"the engine may import only {', '.join(sorted(ENGINE_MAY_IMPORT))}"))
    return bad


def strongly_connected(graph):
    """Strongly connected components with more than one node (the import cycles), each sorted.

    Args:
        graph: {node: iterable of nodes it imports}.
    Returns:
        sorted list of sorted tuples (Tarjan's algorithm, iterative).
    """
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return sorted(found)


def module_cycles(edges):
    """Import cycles between modules (lazy imports included), as sorted tuples of module names.

    A package's ``__init__`` importing its own submodules is not a cycle by itself; one arises
    only when a module imports back up the chain.
    """
    graph = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    return strongly_connected(graph)


def subpackage_cycles(edges):
    """Import cycles between ppgan's subpackages, as sorted tuples of subpackage names."""
    graph = {}
    for edge in edges:
        src, dst = subpackage(edge.source), subpackage(edge.target)
        if src and dst and src != dst:
            graph.setdefault(src, set()).add(dst)
    return strongly_connected(graph)
