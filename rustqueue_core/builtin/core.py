"""The ``core`` plugin: the policy that holds when no other plugin decides.

It is registered first by every ``PluginHost`` and cannot be blocked. Its implementations are
``trylast``, so any other plugin's answer (pluggy calls the most recently registered first) wins:
without an auth plugin every caller is the anonymous principal and every action is allowed, as in
the original server with ``auth.enabled = false``.
"""

from __future__ import annotations

from rustqueue_core.hookspecs import hookimpl
from rustqueue_core.models import ANONYMOUS, Credentials, Principal


@hookimpl(trylast=True)
def rustqueue_authenticate(credentials: Credentials) -> Principal:
    return ANONYMOUS


@hookimpl(trylast=True)
def rustqueue_authorize(principal: Principal, action: str, queue: str | None) -> bool:
    return True
