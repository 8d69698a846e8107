"""Size, layering, typing and commenting figures of the ppgan package, as JSON on stdout.

    python -m benchmarks.code_metrics > benchmarks/code_metrics_after.json

Read from the source with ``ast`` and ``tokenize`` (nothing is imported, no Paddle needed):

- files: ``.py`` files of ppgan over 400 lines, with their names;
- function bodies: lines from the first statement after the docstring to the end, for every
  function and method (nested ones included); p50, p90 and how many exceed 50 lines;
- layers: the import edges that break ``benchmarks.import_graph.LAYERS`` (module and function
  scope, imports by name string included) and the import cycles between subpackages and modules;
- typed: share of public functions and methods (top level, or methods of public classes; the
  constructor counts) whose every parameter but ``self`` / ``cls`` is annotated and which declare
  a return type (``__init__`` may omit it);
- comments: share of non-blank lines that carry a ``#`` comment (and that are only a comment).
"""

import ast
import io
import json
import os
import tokenize

import numpy as np

from benchmarks.import_graph import (PACKAGE_DIR, import_edges, layer_violations, module_cycles,
                                     package_modules, subpackage_cycles)

LONG_FILE_LINES = 400
LONG_FUNCTION_LINES = 50
_PUBLIC_DUNDERS = ("__init__", "__call__")


def _is_public(name):
    return not name.startswith("_") or name in _PUBLIC_DUNDERS


def body_lines(fn):
    """Lines of a function's body without its docstring (0 for a docstring-only function)."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def fully_typed(fn, is_method):
    """True when every parameter (but a method's first) and the return type are annotated."""
    args = fn.args
    params = args.posonlyargs + args.args
    if is_method and params and not any(isinstance(d, ast.Name) and d.id == "staticmethod"
                                        for d in fn.decorator_list):
        params = params[1:]
    params = params + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
    if any(p.annotation is None for p in params):
        return False
    return fn.returns is not None or fn.name == "__init__"


def public_functions(tree):
    """(function node, is_method) of the module's public functions and public classes' methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_public(node.name):
            yield node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_public(item.name):
                    yield item, True


def comment_lines(source):
    """(lines carrying a # comment, lines that are only a comment, non-blank lines) of one file."""
    commented = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                 if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    only = sum(1 for number in commented if lines[number - 1].lstrip().startswith("#"))
    return len(commented), only, sum(1 for line in lines if line.strip())


def measure(package_dir=PACKAGE_DIR):
    """All figures as one JSON-ready dict (see the module docstring)."""
    root = os.path.dirname(package_dir)
    long_files, bodies, typed, public, commented, comment_only, nonblank = [], [], 0, 0, 0, 0, 0
    long_functions = []
    for module, path in package_modules(package_dir).items():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source, filename=path)
        rel = os.path.relpath(path, root)
        if len(source.splitlines()) > LONG_FILE_LINES:
            long_files.append(f"{rel} ({len(source.splitlines())})")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bodies.append(body_lines(node))
                if bodies[-1] > LONG_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name} ({bodies[-1]})")
        for fn, is_method in public_functions(tree):
            public += 1
            typed += fully_typed(fn, is_method)
        c, o, n = comment_lines(source)
        commented, comment_only, nonblank = commented + c, comment_only + o, nonblank + n
    edges = import_edges(package_dir)
    violations = layer_violations(edges)
    return {
        "files_over_400_lines": len(long_files),
        "files_over_400_lines_names": long_files,
        "function_body_lines_p50": float(np.percentile(bodies, 50)),
        "function_body_lines_p90": float(np.percentile(bodies, 90)),
        "functions": len(bodies),
        "functions_over_50_lines": len(long_functions),
        "functions_over_50_lines_names": long_functions,
        "import_edges": len(edges),
        "layer_violations": len(violations),
        "upward_import_edges": sum(reason.startswith("upward") for _, reason in violations),
        "layer_violation_list": [f"{edge} (line {edge.line}, {edge.scope} scope): {reason}"
                                 for edge, reason in violations],
        "subpackage_cycles": [" / ".join(c) for c in subpackage_cycles(edges)],
        "module_cycles": [" / ".join(c) for c in module_cycles(edges)],
        "public_functions": public,
        "public_functions_fully_typed": typed,
        "public_functions_typed_share": round(typed / max(public, 1), 4),
        "comment_line_share": round(commented / max(nonblank, 1), 4),
        "comment_only_line_share": round(comment_only / max(nonblank, 1), 4),
    }


def main():
    print(json.dumps(measure(), indent=2))


if __name__ == "__main__":
    main()
