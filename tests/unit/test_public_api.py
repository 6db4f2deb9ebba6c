"""The small public API re-exported from ``l2tp``: every name resolves, lazily."""

from __future__ import annotations

import enum
import importlib
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import l2tp

KINDS: dict[str, str] = {
    **dict.fromkeys(
        ["AvpType", "DigestType", "EncapType", "MessageType", "PseudowireType", "Role"], "enum"
    ),
    **dict.fromkeys(
        ["CodecError", "KernelError", "ListenError", "SessionFailed", "TunnelFailed"], "exception"
    ),
    **dict.fromkeys(["AsyncDataPlane", "DataPlane", "SessionBackend"], "protocol"),
    **dict.fromkeys(["parse_message", "serialize_message"], "function"),
    **dict.fromkeys(
        [
            "AsyncL2tpNetlink",
            "AsyncLinuxDataPlane",
            "AsyncNullDataPlane",
            "Avp",
            "CallParams",
            "ControlMessage",
            "KernelSessionSpec",
            "KernelTunnelSpec",
            "L2tpContext",
            "L2tpNetlink",
            "LinuxDataPlane",
            "ListenOptions",
            "ListenerConfig",
            "NullDataPlane",
            "PseudowireOffer",
            "Reason",
            "SessionHandle",
            "SessionInfo",
            "SessionOptions",
            "Transport",
            "TransportConfig",
            "Tunnel",
            "TunnelConfig",
            "TunnelHandle",
            "TunnelListener",
        ],
        "class",
    ),
}
"""Every public name and what it is: a change to the public API changes this list."""


def kind_of(value: object) -> str:
    if inspect.isfunction(value):
        return "function"
    if not isinstance(value, type):
        return type(value).__name__
    if issubclass(value, enum.Enum):
        return "enum"
    if issubclass(value, BaseException):
        return "exception"
    if getattr(value, "_is_protocol", False):
        return "protocol"
    return "class"


def test_every_exported_name_is_its_defining_modules_object() -> None:
    assert set(l2tp.__all__) == {*KINDS, "__version__"}
    for name, kind in KINDS.items():
        value = getattr(l2tp, name)
        module = value.__module__
        assert module.startswith("l2tp."), (name, module)
        # The object the package hands out is the one its module defines, under the
        # same name (not a copy, a wrapper or an alias of something else).
        assert getattr(importlib.import_module(module), name) is value, name
        assert value.__name__ == name
        assert kind_of(value) == kind, name
        assert name in dir(l2tp)


def test_version_is_the_distributions() -> None:
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    with pyproject.open("rb") as f:
        assert l2tp.__version__ == tomllib.load(f)["project"]["version"]


def test_importing_l2tp_does_not_load_pyroute2() -> None:
    code = "import sys, l2tp; l2tp.TunnelConfig; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        getattr(l2tp, "NoSuchThing")  # noqa: B009
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
