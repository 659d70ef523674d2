"""Every name a package exports in ``__all__`` resolves, lazily loaded names included."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import resyn


def _packages() -> list[str]:
    names = ["resyn"]
    for info in pkgutil.walk_packages(resyn.__path__, prefix="resyn."):
        if info.ispkg:
            names.append(info.name)
    return sorted(names)


PACKAGES = _packages()


def test_packages_are_found() -> None:
    # The walk must see the sub-packages, or the test below would check nothing.
    assert {"resyn.models", "resyn.restore", "resyn.eval", "resyn.io"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    assert len(set(exported)) == len(exported), f"{package}.__all__ names something twice"
    missing = []
    for name in exported:
        try:
            getattr(module, name)
        except AttributeError as exc:
            missing.append(f"{name} ({exc})")
    assert not missing, f"{package} exports names that do not resolve: {missing}"


@pytest.mark.parametrize("name", ["DCShift", "CrossBiWKV", "SpatialMix", "ChannelMix", "GLLB"])
def test_rwkvir_parts_are_the_network_classes(name: str) -> None:
    from resyn import models
    from resyn.models import rwkvir_blocks

    assert getattr(models, name) is getattr(rwkvir_blocks, name)


def test_unknown_name_is_an_attribute_error() -> None:
    from resyn import models

    with pytest.raises(AttributeError, match="no attribute 'NotAModel'"):
        models.NotAModel  # noqa: B018
