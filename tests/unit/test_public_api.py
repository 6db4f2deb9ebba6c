"""The small public API re-exported from ``l2tp``: every name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import l2tp


def test_every_exported_name_resolves_to_its_module_object() -> None:
    from l2tp.runtime.control import L2tpContext

    for name in l2tp.__all__:
        assert getattr(l2tp, name) is not None, name
    assert l2tp.L2tpContext is L2tpContext


def test_importing_l2tp_does_not_load_pyroute2() -> None:
    code = "import sys, l2tp; l2tp.TunnelConfig; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        l2tp.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
