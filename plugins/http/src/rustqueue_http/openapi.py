"""OpenAPI document: Litestar generates it from the handlers; request bodies are added here.

Handlers read their bodies themselves (one msgspec decode, SDK leniencies such as an empty ack body),
so Litestar cannot see them; the JSON document gets each route's request body from the same msgspec
structs the handlers decode with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.plugins import JsonRenderPlugin

from rustqueue_http import schemas, wire

if TYPE_CHECKING:
    from litestar import Request

_REF = "#/components/schemas/{name}"

#: (path, method) → (struct, body required, description).
REQUEST_BODIES: dict[tuple[str, str], tuple[type[msgspec.Struct], bool, str]] = {
    ("/api/v1/queues/{queue}/jobs", "post"): (
        wire.PushItem,
        True,
        "One job (object) or a batch (array of the same objects); options sit next to `name` and `data`.",
    ),
    ("/api/v1/jobs/{job_id}/ack", "post"): (wire.AckBody, False, "Optional; empty means no result."),
    ("/api/v1/jobs/ack-batch", "post"): (wire.AckBatchBody, True, "`items` or `ids`."),
    ("/api/v1/jobs/{job_id}/fail", "post"): (wire.FailBody, True, "The error text of the failed delivery."),
    ("/api/v1/jobs/{job_id}/progress", "post"): (wire.ProgressBody, True, "Progress 0-255 (clamped to 100)."),
    ("/api/v1/jobs/{job_id}/heartbeat", "post"): (wire.LeaseBody, False, "Optional fencing credential."),
    ("/api/v1/jobs/{job_id}/release", "post"): (wire.LeaseBody, False, "Optional fencing credential."),
    ("/api/v1/queues/{queue}/dlq/retry", "post"): (wire.IdsBody, False, "Optional ids; default: all."),
    ("/api/v1/schedules", "post"): (wire.ScheduleBody, True, "The schedule; an existing name is replaced."),
}


#: Component schemas no handler signature mentions but RustQueue 0.3's document lists.
EXTRA_SCHEMAS: tuple[type[Any], ...] = (schemas.JobEvent, schemas.QueueOrdering)
#: Path parameters named as in RustQueue 0.3's document: ``/api/v1/jobs/{id}``, not ``{job_id}``.
PATH_PARAMETER_NAMES = {"job_id": "id"}


def rename_path_parameters(document: dict[str, Any]) -> None:
    """Rename the path parameters of ``PATH_PARAMETER_NAMES`` in ``document`` in place (keys and
    parameter objects), so the paths read as RustQueue 0.3's clients and tests expect."""
    paths: dict[str, Any] = document.get("paths", {})
    renamed: dict[str, Any] = {}
    for path, item in paths.items():
        for old, new in PATH_PARAMETER_NAMES.items():
            path = path.replace("{" + old + "}", "{" + new + "}")
        for operation in item.values() if isinstance(item, dict) else ():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else ():
                if parameter.get("in") == "path" and parameter.get("name") in PATH_PARAMETER_NAMES:
                    parameter["name"] = PATH_PARAMETER_NAMES[parameter["name"]]
        renamed[path] = item
    document["paths"] = renamed


def add_request_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with the request bodies of ``REQUEST_BODIES``, their schemas and
    ``EXTRA_SCHEMAS``, and the path parameters renamed by ``rename_path_parameters``."""
    augmented: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(document))
    structs = list({struct for struct, _, _ in REQUEST_BODIES.values()})
    refs, components = msgspec.json.schema_components([*structs, *EXTRA_SCHEMAS], ref_template=_REF)
    ref_by_struct = dict(zip(structs, refs[: len(structs)], strict=True))
    document_schemas = augmented.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        document_schemas.setdefault(name, schema)
    for (path, method), (struct, required, description) in REQUEST_BODIES.items():
        operation = augmented.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        body_schema: dict[str, Any] = ref_by_struct[struct]
        if struct is wire.PushItem:
            body_schema = {"oneOf": [body_schema, {"type": "array", "items": body_schema}]}
        operation["requestBody"] = {
            "required": required,
            "description": description,
            "content": {"application/json": {"schema": body_schema}},
        }
    rename_path_parameters(augmented)
    return augmented


class RequestBodyJsonRenderPlugin(JsonRenderPlugin):
    """Serves ``/openapi.json`` with request bodies added (computed once per app)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self.render_json(request, add_request_bodies(openapi_schema))
        return self._rendered
