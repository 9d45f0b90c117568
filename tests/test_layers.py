"""Data flows one way: configs -> networks -> data -> train -> checkpoints / metrics / samples,
with the training loop and the CLIs on top. No module imports from a layer above its own."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "stylejax"

# Lowest first; a module belongs to the layer of the longest prefix listed.
LAYERS = [
    ("base", ["stylejax", "stylejax.errors", "stylejax.configs", "stylejax.files", "stylejax.steps",
              "stylejax.cli", "stylejax.host_memory"]),
    ("networks", ["stylejax.ops", "stylejax.models", "stylejax.networks", "stylejax.official"]),
    ("data", ["stylejax.data"]),
    ("train", ["stylejax.losses", "stylejax.train"]),
    ("outputs", ["stylejax.checkpoints", "stylejax.metrics", "stylejax.sampling", "stylejax.figures",
                 "stylejax.video", "stylejax.projection"]),
    ("run", ["stylejax.train.loop", "stylejax.train.evaluation"]),
    ("cli", ["stylejax.main", "stylejax.sample", "stylejax.explore", "stylejax.evaluate", "stylejax.sweep",
             "stylejax.sweeps", "stylejax.project"]),
]


def layer_of(module: str) -> int:
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stylejax_imports(path: pathlib.Path) -> set[str]:
    """Every stylejax module `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in names if name in modules}


def test_no_module_imports_from_a_layer_above():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported in stylejax_imports(path):
            if layer_of(imported) > layer_of(importer):
                upward.append(f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {imported} "
                              f"({LAYERS[layer_of(imported)][0]})")
    assert not upward, "\n".join(upward)


def test_the_layer_rule_catches_an_upward_import():
    assert layer_of("stylejax.models.generator") < layer_of("stylejax.train.step")
    assert layer_of("stylejax.train.step") < layer_of("stylejax.checkpoints.manager")
    assert layer_of("stylejax.checkpoints.manager") < layer_of("stylejax.train.loop")
