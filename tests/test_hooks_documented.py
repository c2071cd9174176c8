"""Every hook has a section in docs/plugins/hooks.md headed by its exact signature, and every example
there is quoted from a file this test runs."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import re
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rustqueue_core import AuthError, ConfigError, hookspecs
from rustqueue_core.config import CommandRegistry, Config, OptionRegistry
from rustqueue_core.models import ANONYMOUS, Credentials, Job, JobEvent, JobOptions, NewJob, WorkerInfo
from rustqueue_core.plugins import PluginHost

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins"
HOOKS_MD = (DOCS / "hooks.md").read_text()
SNIPPETS = DOCS / "snippets" / "every_hook.py"


def spec_signatures() -> dict[str, str]:
    return {
        name: f"{name}({', '.join(inspect.signature(fn).parameters)})"
        for name, fn in vars(hookspecs).items()
        if name.startswith("rustqueue_") and callable(fn) and hasattr(fn, "rustqueue_spec")
    }


def test_the_contract_has_its_hooks() -> None:
    assert len(spec_signatures()) >= 13


@pytest.mark.parametrize("signature", sorted(spec_signatures().values()))
def test_hook_has_a_section_headed_by_its_signature(signature: str) -> None:
    assert f"\n### `{signature}`\n" in HOOKS_MD, f"docs/plugins/hooks.md lacks a section '### `{signature}`'"


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(rustqueue_\w+\([^)]*\))`$", HOOKS_MD, flags=re.M))
    assert documented == set(spec_signatures().values())


def test_every_example_is_quoted_from_the_tested_file() -> None:
    source = SNIPPETS.read_text()
    blocks = re.findall(r"<!-- from snippets/every_hook.py -->\n```python\n(.*?)\n```", HOOKS_MD, flags=re.S)
    assert len(blocks) == len(spec_signatures())
    for block in blocks:
        assert block in source, f"this example is not in {SNIPPETS.name}:\n{block}"


QUOTE = re.compile(r"<!-- from (\S+) -->\n```\w*\n(.*?)\n```", flags=re.S)


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_quoted_code_matches_its_file(page: str) -> None:
    for path, block in QUOTE.findall((DOCS / page).read_text()):
        source = (DOCS / path).resolve()
        assert source.is_file(), f"{page} quotes a missing file {path}"
        assert block in source.read_text(), f"{page}: this block is not in {path}:\n{block}"


@pytest.fixture
def example() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("rustqueue_docs_every_hook", SNIPPETS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def host(example: types.ModuleType) -> PluginHost:
    host = PluginHost()
    host.register(example, "example")
    host.check_pending()
    return host


def test_setup_hooks(host: PluginHost, example: types.ModuleType) -> None:
    assert host.hook.rustqueue_example_routes(app_config=None) == []  # the spec was added
    options = OptionRegistry()
    host.add_options(options)
    assert [o.key for o in options] == ["example.batch_size"]
    commands = CommandRegistry()
    host.add_commands(commands)
    greet = commands.get("greet")
    assert greet is not None and greet.owner == "example"
    host.configure(Config.from_toml("[example]\nbatch_size = 5\n"))
    assert example.settings.batch_size == 5
    with pytest.raises(ConfigError):
        host.configure(Config.from_toml("[example]\nbatch_size = 'many'\n"))


def test_providers(host: PluginHost) -> None:
    spec = host.resolve_storage("example://somewhere")
    assert spec.name == "example" and spec.capabilities.durable
    (transport,) = host.transports()
    assert transport.name == "ping"


async def test_transport_serves_while_entered(host: PluginHost) -> None:
    (transport,) = host.transports()
    engine = types.SimpleNamespace(state="ready")
    async with transport.factory(engine, None) as address:
        hostname, port = address.rsplit(":", 1)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(hostname, int(port)), 5)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"pong ready\n"
        writer.close()


async def test_lifespan_drains_what_jobs_changed_queued(host: PluginHost, example: types.ModuleType) -> None:
    event = JobEvent(kind="job.completed", job_id="1", queue="q", timestamp=datetime.now(UTC))
    (lifespan,) = host.lifespans(engine=None)  # type: ignore[arg-type]
    async with lifespan:
        assert host.has_jobs_changed
        host.jobs_changed([event])
        for _ in range(100):
            if example.delivered:
                break
            await asyncio.sleep(0.01)
        assert example.delivered == [event]
    (check,) = [c for c in host.health(engine=None) if c.component == "example"]  # type: ignore[arg-type]
    assert check.state == "ok" and check.detail == "0 batches waiting"


def test_decisions(host: PluginHost) -> None:
    assert host.authenticate(Credentials(transport="http", token="s3cret")).name == "deployer"
    assert host.authenticate(Credentials(transport="http")) == ANONYMOUS
    with pytest.raises(AuthError):
        host.authenticate(Credentials(transport="http", token="guess"))
    assert host.authorize(ANONYMOUS, "delete_job", "q") is False
    assert host.authorize(ANONYMOUS, "push", "q") is True


async def test_job_hooks(host: PluginHost) -> None:
    jobs = [NewJob(queue="q", name="a"), NewJob(queue="q", name="b", options=JobOptions(metadata={"k": 1}))]
    assert host.has_before_push
    host.before_push(jobs, None)
    assert [j.options.metadata for j in jobs] == [
        {"pushed_by": "anonymous"},
        {"k": 1, "pushed_by": "anonymous"},
    ]

    (middleware,) = host.worker_middleware("q", WorkerInfo(queue="q", consumer_id="w", concurrency=1))
    now = datetime.now(UTC)
    job = Job(id="1", name="a", queue="q", created_at=now, updated_at=now)

    async def handler(job: Job) -> str:
        return f"done {job.id}"

    assert await middleware(job, handler) == "done 1"


def test_plugin_index_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("rustqueue_docs_generate_index", DOCS / "generate_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "index.md").read_text() == module.render(), "run: python docs/plugins/generate_index.py"
    for name in ("postgres", "http", "memory", "sqlite"):
        assert f"| `{name}` |" in module.render()
