"""A package's public names stay what they say once every submodule is loaded.

Importing ``trainwiz.launchers.preflight`` (a module) once made ``from trainwiz.launchers import
preflight`` give the module instead of the function, and the app's Check button failed. Every
submodule of every package is imported here first, in one process, as a long app session would.
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import trainwiz

PACKAGES = ("trainwiz.estimator", "trainwiz.hardware", "trainwiz.launchers", "trainwiz.profiles")


def _import_everything() -> None:
    for info in pkgutil.walk_packages(trainwiz.__path__, "trainwiz."):
        if info.name.startswith(("trainwiz.tui", "trainwiz.__main__")):
            continue  # the app needs a terminal; its names are not a package API
        importlib.import_module(info.name)


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_are_not_shadowed_by_submodules(package):
    _import_everything()
    pkg = importlib.import_module(package)
    for name in getattr(pkg, "__all__", ()):
        value = getattr(pkg, name)
        assert not isinstance(value, types.ModuleType), (
            f"{package}.{name} is the module {value.__name__}, not the API name it documents")
