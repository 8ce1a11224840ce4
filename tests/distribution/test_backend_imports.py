"""Backend imports live in `keras_ahbf/data/` and `keras_ahbf/distribution/` only.

Everything else uses `keras.ops` (see CONTRIBUTING.md, "Style"); the test
reads the sources, it imports nothing.
"""

import ast
import os

import keras_ahbf

PACKAGE = os.path.dirname(os.path.abspath(keras_ahbf.__file__))
BACKENDS = {"tensorflow", "jax", "jaxlib", "torch"}
PERMITTED = ("data", "distribution", "kernels")


def _backend_imports(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in BACKENDS:
                yield node.lineno, name


def test_backend_imports_only_in_permitted_packages():
    found = []
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        relative = os.path.relpath(root, PACKAGE)
        if relative.split(os.sep)[0] in PERMITTED:
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                found += [
                    f"{os.path.relpath(path, PACKAGE)}:{line} imports {module}"
                    for line, module in _backend_imports(path)
                ]
    assert found == []
