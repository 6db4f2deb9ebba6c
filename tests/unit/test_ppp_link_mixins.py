"""The mixins of :class:`l2tp.runtime.ppp_link.PppLink` (ppp_auth_glue, ppp_link_observer,
ppp_grants, ppp_network) declare what they call on the link with stub methods that raise
``NotImplementedError``. A stub earlier in the method resolution order than the real
method would win silently and fail only when that path runs (an observer call, a
Session-Timeout), so check every name the link resolves, and where the moved code logs."""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap

import pytest

from l2tp.runtime import ppp_auth_glue, ppp_grants, ppp_link, ppp_link_observer, ppp_network
from l2tp.runtime.ppp_link import PppLink


def _is_stub(function: object) -> bool:
    """True for a function whose body (past a docstring) is only ``raise NotImplementedError``."""
    if not inspect.isfunction(function):
        return False
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def test_the_stub_detector_sees_the_mixins_stubs() -> None:
    """The check below relies on this one: the mixins do have stubs, and it finds them."""
    assert _is_stub(ppp_network.PppNetwork._observe_up)
    assert _is_stub(ppp_grants.PppGrants._limit_reached)
    assert _is_stub(ppp_auth_glue.PppAuthGlue.set_session_timeout)
    assert not _is_stub(ppp_link_observer.PppLinkObserver._observe_up)


def test_no_link_method_resolves_to_a_stub() -> None:
    stubs = []
    for name in dir(PppLink):
        for cls in PppLink.__mro__:
            if name in vars(cls):
                if _is_stub(vars(cls)[name]):
                    stubs.append(f"{name} ({cls.__module__}.{cls.__qualname__})")
                break
    assert stubs == []


@pytest.mark.parametrize("module", [ppp_link, ppp_auth_glue, ppp_link_observer])
def test_moved_code_logs_as_before(module: object) -> None:
    """Log records of the link keep the logger name operators filter on."""
    log = vars(module)["log"]
    assert isinstance(log, logging.Logger)
    assert log.name == "l2tp.runtime.builtin_ppp"
