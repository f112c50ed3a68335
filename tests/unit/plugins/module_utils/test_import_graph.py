"""The collection's import graph: no import runs back up a layer, and no import cycle (docs/architecture.md).

Every .py file under plugins/ is a node; every import of a collection module (absolute
``ansible_collections.sglang.prep.plugins...`` or relative, at module level or inside a function) is an edge.
The graph is read with ast, so nothing is imported to draw it.
"""

import ast
import pathlib

import pytest

PLUGINS = pathlib.Path(__file__).resolve().parents[4] / "collections/ansible_collections/sglang/prep/plugins"
PREFIX = "ansible_collections.sglang.prep.plugins."

# The layers, lowest first, as docs/architecture.md draws them: a module may import its own layer and the ones
# below it, never one above.
LAYERS = ("contract", "runtime", "host", "edge")


def layer_of(name):
    """The layer of a module, by its dotted name under plugins/ (module_utils.sglang_prep.contract, ...)."""
    parts = name.split(".")
    if parts[0] == "module_utils" and parts[1:2] == ["sglang_prep"]:
        if parts[2:3] in (["container"], ["__main__"]):
            return "runtime"  # the program that runs in the container (python3 -m sglang_prep)
        return "contract"  # the shared contract: paths, names, the registry, error types, wording
    if parts[0] == "module_utils":
        return "host"  # host-side helpers of the modules (docker exec, the runtime manifest, the fleet report)
    return "edge"  # modules, action, filter, lookup, doc_fragments


def module_names(root):
    """{dotted name under plugins/: path} of every .py file (a package by its __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name, modules):
    """The module a dotted name imports: itself, else its closest enclosing package that is a module here."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name, path, modules):
    """The collection modules that the module ``name`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
                if not mod.startswith(PREFIX):
                    continue
                mod = mod[len(PREFIX):]
            # from X import y: y is a submodule of X when there is one, else a name in X
            targets = [mod + "." + alias.name if (mod + "." + alias.name) in modules else mod for alias in node.names]
        for target in targets:
            if target.startswith(PREFIX):
                target = target[len(PREFIX):]
            resolved = _resolve(target, modules)
            if resolved and resolved != name:
                found.add(resolved)
    return found


def import_graph(root=PLUGINS):
    modules = module_names(root)
    return dict((name, imports_of(name, path, modules)) for name, path in modules.items())


def upward_imports(graph):
    """[(importer, its layer, imported, its layer)] of every import that runs back up a layer."""
    out = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(name)):
                out.append((name, layer_of(name), target, layer_of(target)))
    return out


def cycles(graph):
    """Import cycles, each as the list of modules around it (depth-first search)."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_is_read():
    """The graph has the collection's parts, with the edges that are known to exist."""
    graph = import_graph()
    assert "module_utils.sglang_prep.container.stages" in graph
    assert "module_utils.sglang_prep.contract" in graph["module_utils.sglang_prep.container.runner"]
    assert "module_utils.sglang_prep.registry" in graph["module_utils.sglang_prep.contract"]
    assert "module_utils._priming" in graph["modules.sglang_stage"]
    assert "module_utils._docker_exec" in graph["module_utils._priming"]
    assert set(layer_of(name) for name in graph) == set(LAYERS)


def test_no_import_runs_back_up_a_layer():
    offenders = upward_imports(import_graph())
    assert not offenders, "imports that run back up a layer (docs/architecture.md): %s" % "; ".join(
        "%s (%s) imports %s (%s)" % row for row in offenders)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles: %s" % "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_contract_layer_reads_without_the_package():
    """registry.py, errors.py and sglang_options.py import nothing of the collection: everything else builds on them."""
    graph = import_graph()
    for name in ("registry", "errors", "sglang_options", "jsonio"):
        assert graph["module_utils.sglang_prep." + name] == set(), name


@pytest.fixture
def tree(tmp_path):
    """A small plugins/ tree with one module per layer, that imports only downwards."""
    files = {
        "module_utils/sglang_prep/__init__.py": "",
        "module_utils/sglang_prep/contract.py": "from . import registry\n",
        "module_utils/sglang_prep/registry.py": "",
        "module_utils/sglang_prep/container/__init__.py": "",
        "module_utils/sglang_prep/container/stages.py": "from .. import contract\n",
        "module_utils/_docker_exec.py": "from %smodule_utils.sglang_prep import contract\n" % PREFIX,
        "modules/sglang_stage.py": "from %smodule_utils import _docker_exec as dx\n" % PREFIX,
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_a_lower_layer_importing_a_higher_one_fails(tree):
    assert upward_imports(import_graph(tree)) == [] and cycles(import_graph(tree)) == []
    # the contract reaching into the runtime, inside a function: still an edge
    (tree / "module_utils/sglang_prep/registry.py").write_text(
        "def late():\n    from .container import stages\n    return stages\n")
    assert upward_imports(import_graph(tree)) == [
        ("module_utils.sglang_prep.registry", "contract", "module_utils.sglang_prep.container.stages", "runtime")]
    # the runtime importing a host helper by its absolute name
    (tree / "module_utils/sglang_prep/registry.py").write_text("")
    (tree / "module_utils/sglang_prep/container/stages.py").write_text(
        "from %smodule_utils._docker_exec import run\n" % PREFIX)
    assert [row[2] for row in upward_imports(import_graph(tree))] == ["module_utils._docker_exec"]


def test_a_cycle_fails(tree):
    (tree / "module_utils/sglang_prep/registry.py").write_text("from .contract import STAGES\n")
    assert cycles(import_graph(tree)) == [
        ["module_utils.sglang_prep.contract", "module_utils.sglang_prep.registry", "module_utils.sglang_prep.contract"]]


def closure(graph, name):
    seen, todo = set(), [name]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_sglang_prime_does_not_import_the_host_side_state_model():
    """Every no-op re-prime runs sglang_prime: it imports (and, from its payload, compiles) only what it runs. The
    state model read on the host is sglang_prime_info's (module_utils._prime_info)."""
    graph = import_graph()
    unused = {"module_utils._pointer_wait", "module_utils.sglang_prep.container.state",
              "module_utils.sglang_prep.container.ledger", "module_utils.sglang_prep.manifest"}
    assert closure(graph, "modules.sglang_prime") & unused == set()
    assert unused <= closure(graph, "modules.sglang_prime_info")
