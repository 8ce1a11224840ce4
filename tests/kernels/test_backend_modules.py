"""Each backend's kernels live in its own module and import only that backend;
the rest of `keras_ahbf.kernels` imports no backend (the test reads sources)."""

import ast
import os

import keras_ahbf.kernels

FOLDER = os.path.dirname(os.path.abspath(keras_ahbf.kernels.__file__))
OWN_BACKEND = {"tensorflow_kernels.py": "tensorflow", "torch_kernels.py": "torch"}
BACKENDS = {"tensorflow", "jax", "jaxlib", "torch"}


def _top_level_imports(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_backend_imports_only_in_their_own_module():
    for name in sorted(os.listdir(FOLDER)):
        if not name.endswith(".py"):
            continue
        imported = set(_top_level_imports(os.path.join(FOLDER, name))) & BACKENDS
        allowed = {OWN_BACKEND[name]} if name in OWN_BACKEND else set()
        assert imported <= allowed, (name, imported)
