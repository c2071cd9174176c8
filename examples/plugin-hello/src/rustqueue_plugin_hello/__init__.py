"""A third-party rustqueue plugin: counts job events and reports them through health.

It is the plugin that docs/plugins/writing.md builds step by step. The entry point
(``[project.entry-points.rustqueue] hello = "rustqueue_plugin_hello"``) names this module, so it must
stay cheap to import: only ``rustqueue_core``, msgspec and the standard library at top level.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec

from rustqueue_core import HealthCheck, JobEvent, hookimpl
from rustqueue_core.config import Config, OptionRegistry


class HelloConfig(msgspec.Struct, kw_only=True):
    """The ``[hello]`` table of rustqueue.toml."""

    greeting: str = "hello"


#: Job events seen, by kind. Module state: one count per process, shared by every engine in it.
seen: Counter[str] = Counter()
settings = HelloConfig()


@hookimpl
def rustqueue_add_options(options: OptionRegistry) -> None:
    options.add(
        key="hello.greeting",
        flag="--hello-greeting",
        env="RUSTQUEUE_HELLO_GREETING",
        default="hello",
        help="word the hello plugin puts in its health detail",
    )


@hookimpl
def rustqueue_configure(config: Config) -> None:
    global settings
    settings = config.section("hello", HelloConfig)


@hookimpl
def rustqueue_jobs_changed(events: Sequence[JobEvent]) -> None:
    # Called once per committed batch, on the engine's loop: count and return at once.
    seen.update(event.kind for event in events)


@hookimpl
def rustqueue_health() -> HealthCheck:
    total = sum(seen.values())
    return HealthCheck(component="hello", state="ok", detail=f"{settings.greeting}: {total} job events seen")
