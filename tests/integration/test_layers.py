"""ppgan's imports point one way: down the layers of ``benchmarks.import_graph.LAYERS``, with no cycle.

Every import counts, lazy ones inside functions included. ``ALLOW_LIST`` names the violations
still being removed; it must end empty, and an entry that no longer occurs fails too, so the list
only shrinks.
"""

from benchmarks.import_graph import (ImportEdge, import_edges, layer_violations, module_cycles,
                                     strongly_connected, subpackage_cycles)

# "source module -> target module" edges and "a / b" cycles (sorted members) still to be removed:
# none are left; an entry may only come back with the reason it cannot be avoided yet.
ALLOW_LIST: set = set()

EDGES = import_edges()


def _found():
    violations = {str(edge): f"{edge} (line {edge.line}): {reason}"
                  for edge, reason in layer_violations(EDGES)}
    for cycle in subpackage_cycles(EDGES) + module_cycles(EDGES):
        violations[" / ".join(cycle)] = f"import cycle: {' / '.join(cycle)}"
    return violations


def test_no_upward_edge_and_no_cycle():
    new = [message for key, message in sorted(_found().items()) if key not in ALLOW_LIST]
    assert not new, "imports against the layers (move the code to the layer that may import it):\n" \
        + "\n".join(new)


def test_allow_list_only_shrinks():
    stale = sorted(ALLOW_LIST - set(_found()))
    assert not stale, f"fixed, so remove from ALLOW_LIST: {stale}"


def test_walker_sees_lazy_and_relative_imports():
    """The walk finds module- and function-scope relative imports (else the tests above are blind)."""
    scopes = {(edge.source, edge.target): edge.scope for edge in EDGES}
    assert scopes[("ppgan.models.wav2lip_model", "ppgan.models.builder")] == "module"
    assert "function" in scopes.values()
    assert any(edge.target.startswith("ppgan.utils") for edge in EDGES)


def test_layer_rules_and_cycle_finder():
    edges = [ImportEdge("ppgan.utils.a", "ppgan.models.b", 1, "function"),
             ImportEdge("ppgan.models.b", "ppgan.utils.a", 1, "module"),
             ImportEdge("ppgan.engine.c", "ppgan.metrics.d", 3, "function"),
             ImportEdge("ppgan.models.b", "ppgan.faceutils.e", 2, "module")]
    reasons = [reason.split(":")[0] for _, reason in layer_violations(edges)]
    assert reasons == ["upward", "the engine may import only data, datasets, models, modules, solver, "
                       "utils", "sideways"]
    assert subpackage_cycles(edges) == [("models", "utils")]
    assert strongly_connected({1: [2], 2: [3], 3: [1], 4: [1]}) == [(1, 2, 3)]
