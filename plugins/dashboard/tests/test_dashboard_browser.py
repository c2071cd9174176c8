"""The dashboard in a real browser: headless Chromium against ``rustqueue serve`` with the http,
websocket and dashboard plugins, driven through the main flows.

Screenshots of every page are written to a temporary folder, or to ``docs/images/`` when
``RUSTQUEUE_SCREENSHOTS=1`` (``plugins/dashboard/scripts/screenshots.py`` sets it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import REPO_ROOT, ServerProcess, chromium, chromium_available, start_server, stop_server

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)

WAIT_S = 15.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Fast sampling so that the charts have points within the test's lifetime.
    config = "[dashboard]\nsample_interval_s = 0.5\n"
    process = start_server(tmp_path_factory.mktemp("dashboard-server"), "http,websocket,dashboard", config=config)
    try:
        yield process
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("RUSTQUEUE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "images"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


# --------------------------------------------------------------------------- helpers


def push(api: httpx.Client, queue: str, **body: Any) -> str:
    response = api.post(f"/api/v1/queues/{queue}/jobs", json={"name": "task", "data": {}, **body})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def dead_job(api: httpx.Client, queue: str, error: str, **body: Any) -> str:
    """A job in the dead-letter queue: one attempt, pulled and failed."""
    job_id = push(api, queue, max_attempts=1, **body)
    while True:
        pulled = api.get(f"/api/v1/queues/{queue}/jobs").json()["job"]
        assert pulled is not None
        if pulled["id"] == job_id:
            break
        api.post(f"/api/v1/jobs/{pulled['id']}/release", json={"lease_token": pulled["lease_token"]})
    failed = api.post(f"/api/v1/jobs/{job_id}/fail", json={"error": error, "lease_token": pulled["lease_token"]})
    assert failed.status_code == 200 and failed.json()["retry"] is False
    return job_id


def job_state(api: httpx.Client, job_id: str) -> str:
    state: str = api.get(f"/api/v1/jobs/{job_id}").json()["job"]["state"]
    return state


def wait_until(browser: Any, condition: Callable[[Any], Any], message: str, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition, message)


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, css), f"no element {css}")


def text_of(browser: Any, css: str) -> str:
    """Visible text of every match, read in one script call (pages re-render while we look)."""
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText).join(' ')"
    text: str = browser.execute_script(script, css)
    return text


def attrs_of(browser: Any, css: str, name: str) -> list[str]:
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]))"
    values: list[str] = browser.execute_script(script, css, name)
    return values


def wait_text(browser: Any, css: str, expected: str, timeout: float = WAIT_S) -> None:
    wait_until(browser, lambda d: expected in text_of(d, css), f"{expected!r} never appeared in {css}", timeout)


def open_page(browser: Any, server: ServerProcess, route: str) -> None:
    browser.get(f"{server.url}/dashboard#/{route}")
    wait_until(browser, lambda d: d.execute_script("return document.readyState") == "complete", "page load")


def click(browser: Any, css: str) -> None:
    """Click the element, looking it up again if a refresh replaced it meanwhile."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    def clicked(driver: Any) -> bool:
        try:
            find(driver, css).click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    wait_until(browser, clicked, f"could not click {css}")


def confirm(browser: Any) -> None:
    click(browser, "#confirm-ok")


def card_value(browser: Any, key: str) -> str:
    return text_of(browser, f'#overview-cards .card[data-key="{key}"] .value')


def screenshot(browser: Any, shots: Path, name: str) -> None:
    path = shots / f"dashboard-{name}.png"
    assert browser.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 10_000


def rows(browser: Any, css: str) -> list[str]:
    """How many elements match, as their ``data-job`` (or empty) attributes."""
    return [value or "" for value in attrs_of(browser, css, "data-job")]


# --------------------------------------------------------------------------- flows


def test_overview_and_queue_pages_show_counts(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    for _ in range(3):
        push(api, "br-overview")
    open_page(browser, server, "overview")

    def cards_match(_: Any) -> bool:
        totals = api.get("/dashboard/api/overview").json()["totals"]
        return (
            card_value(browser, "waiting") == f"{totals['waiting']:,}"
            and card_value(browser, "total") == f"{totals['total']:,}"
        )

    wait_until(browser, cards_match, "the overview cards never matched the server's totals")
    open_page(browser, server, "queues")
    wait_text(browser, '#queue-list tr[data-queue="br-overview"]', "br-overview")
    waiting = text_of(browser, '#queue-list tr[data-queue="br-overview"] td:nth-child(3)')
    assert waiting == "3"
    click(browser, '#queue-list tr[data-queue="br-overview"] a')
    wait_text(browser, ".page-head h1", "br-overview")
    wait_text(browser, ".cards", "PENDING")
    assert "/queues/br-overview" in browser.current_url


def test_job_list_and_detail_with_dag_links(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    parent = push(api, "br-dag", name="extract", data={"source": "s3://bucket/a.csv"}, tags=["etl"])
    child = push(api, "br-dag", name="load", data={"table": "events"}, depends_on=[parent])
    open_page(browser, server, "jobs?queue=br-dag&state=blocked")
    wait_until(browser, lambda d: len(rows(d, "#job-list tbody tr")) == 1, "the state filter did not apply")
    assert rows(browser, "#job-list tbody tr") == [child]
    click(browser, f'#job-list tr[data-job="{child}"] a')
    wait_text(browser, "#job-data", "events")
    wait_text(browser, "#job-reasons", "blocked_by")
    wait_text(browser, "#job-parents", parent[-8:])
    wait_text(browser, "#job-timeline", "Created")
    click(browser, f'#job-parents a[href="#/jobs/{parent}"]')
    wait_text(browser, "#job-data", "s3://bucket/a.csv")
    wait_text(browser, "#job-children", child[-8:])
    wait_text(browser, ".page-head", "extract")
    open_page(browser, server, "jobs?tags=etl")
    wait_until(browser, lambda d: len(rows(d, "#job-list tbody tr")) == 1, "the tag filter did not apply")


def test_job_list_pages_with_the_cursor(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    ids = {push(api, "br-paging") for _ in range(30)}
    open_page(browser, server, "jobs?queue=br-paging")
    wait_until(browser, lambda d: len(rows(d, "#job-list tbody tr")) == 25, "first page")
    first = set(rows(browser, "#job-list tbody tr"))
    click(browser, "#page-next")
    wait_until(browser, lambda d: len(rows(d, "#job-list tbody tr")) == 5, "second page")
    second = set(rows(browser, "#job-list tbody tr"))
    assert first | second == ids and not first & second
    assert attrs_of(browser, "#page-next", "disabled") == [""]
    click(browser, "#page-prev")
    wait_until(browser, lambda d: len(rows(d, "#job-list tbody tr")) == 25, "back to the first page")


def test_dlq_retry_single_and_bulk(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    dead = [dead_job(api, "br-dlq", f"boom {i}") for i in range(3)]
    open_page(browser, server, "dlq?queue=br-dlq")
    wait_until(browser, lambda d: len(rows(d, "#dlq-list tbody tr")) == 3, "three dead jobs listed")
    wait_text(browser, "#dlq-list", "boom 1")
    target = dead[1]
    click(browser, f'#dlq-list tr[data-job="{target}"] .dlq-retry')
    wait_until(browser, lambda d: len(rows(d, "#dlq-list tbody tr")) == 2, "the retried job left the list")
    assert job_state(api, target) == "waiting"
    click(browser, "#dlq-list thead input")
    wait_text(browser, "#dlq-retry-selected", "(2)")
    click(browser, "#dlq-retry-selected")
    wait_text(browser, "#dlq-list", "is empty")
    assert {job_state(api, job_id) for job_id in dead} == {"waiting"}


def test_schedule_pause_resume_create_and_delete(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    body = {
        "name": "br-hourly",
        "queue": "br-sched",
        "job_name": "tick",
        "every_ms": 3_600_000,
        "run_immediately": False,
    }
    assert api.post("/api/v1/schedules", json=body).status_code == 201
    open_page(browser, server, "schedules")
    row = '#schedule-list tr[data-schedule="br-hourly"]'
    wait_text(browser, row + " .schedule-status", "active")
    click(browser, row + " .schedule-toggle")
    wait_text(browser, row + " .schedule-status", "paused")
    assert api.get("/api/v1/schedules/br-hourly").json()["schedule"]["paused"] is True
    click(browser, row + " .schedule-toggle")
    wait_text(browser, row + " .schedule-status", "active")
    assert api.get("/api/v1/schedules/br-hourly").json()["schedule"]["paused"] is False

    form = "#create-schedule-form "
    find(browser, form + 'input[name="name"]').send_keys("br-nightly")
    find(browser, form + 'input[name="queue"]').send_keys("br-sched")
    find(browser, form + 'input[name="job_name"]').send_keys("report")
    find(browser, form + 'input[name="timing"]').send_keys("30 2 * * *")
    click(browser, "#create-schedule")
    wait_text(browser, '#schedule-list tr[data-schedule="br-nightly"]', "cron: 30 2 * * *")
    assert api.get("/api/v1/schedules/br-nightly").json()["schedule"]["cron_expr"] == "30 2 * * *"
    click(browser, '#schedule-list tr[data-schedule="br-nightly"] .btn.danger')
    confirm(browser)
    wait_until(browser, lambda d: not rows(d, '#schedule-list tr[data-schedule="br-nightly"]'), "deleted row")
    assert api.get("/api/v1/schedules/br-nightly").status_code == 404


def test_live_event_arrives(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    open_page(browser, server, "events")
    wait_until(browser, lambda d: "live" in attrs_of(d, "#conn", "class")[0], "the WebSocket never connected")
    job_id = push(api, "br-live")
    wait_text(browser, "#event-stream", job_id)
    wait_text(browser, '#event-stream .row[data-event="job.pushed"]', "br-live")


def test_qrusty_queue_lifecycle(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, server, "queues")
    find(browser, '#create-queue-form input[name="name"]').send_keys("br-orders")
    Select(find(browser, '#create-queue-form select[name="ordering"]')).select_by_value("min_first")
    click(browser, '#create-queue-form input[name="allow_duplicates"]')
    click(browser, "#create-queue")
    wait_text(browser, ".page-head h1", "br-orders")
    wait_text(browser, ".page-head", "no duplicates")
    config = api.get("/dashboard/api/overview").json()["queues"]
    orders = next(q for q in config if q["name"] == "br-orders")
    assert orders["config"]["ordering"] == "min_first" and orders["config"]["allow_duplicates"] is False

    for payload, priority in (("second", "7"), ("first", "2")):
        find(browser, "#publish-payload").clear()
        find(browser, "#publish-payload").send_keys(payload)
        find(browser, "#publish-priority").clear()
        find(browser, "#publish-priority").send_keys(priority)
        click(browser, "#publish-message")
        wait_text(browser, "#toasts", "Published")
    wait_until(browser, lambda d: api.get("/api/v1/queues/br-orders/stats").json()["counts"]["waiting"] == 2, "2")
    click(browser, "#consume-message")
    wait_text(browser, "#consumed-message", "first")  # MinFirst: the lowest priority comes first
    message_id = text_of(browser, "#consumed-message a")
    click(browser, "#ack-message")
    wait_until(browser, lambda d: not rows(d, "#consumed-message"), "the message box closed")
    assert job_state(api, message_id) == "completed"

    click(browser, "#purge-queue")
    confirm(browser)
    wait_text(browser, "#toasts", "Purged 1 job(s)")
    assert api.get("/api/v1/queues/br-orders/stats").json()["counts"]["waiting"] == 0

    click(browser, "#dup-toggle")
    wait_text(browser, "#toasts", "Duplicates allowed")
    wait_until(browser, lambda d: "no duplicates" not in text_of(d, ".page-head"), "badge updated")

    find(browser, "#rename-input").send_keys("br-orders-v2")
    click(browser, "#rename-queue")
    wait_text(browser, ".page-head h1", "br-orders-v2")
    names = [q["name"] for q in api.get("/dashboard/api/overview").json()["queues"]]
    assert "br-orders-v2" in names and "br-orders" not in names

    click(browser, "#delete-queue")
    confirm(browser)
    wait_until(browser, lambda d: d.current_url.endswith("#/queues"), "back on the queue list")
    names = [q["name"] for q in api.get("/dashboard/api/overview").json()["queues"]]
    assert "br-orders-v2" not in names


def test_queue_charts_fill_from_the_time_series(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    for _ in range(5):
        push(api, "br-chart")
    open_page(browser, server, "queues/br-chart")
    wait_until(
        browser,
        lambda d: len(rows(d, "#chart-rates path.line")) == 3 and "samples" in text_of(d, "#rate-chart"),
        "the throughput chart never drew its lines",
    )
    wait_until(browser, lambda d: "collecting" not in text_of(d, "#depth-chart"), "depth samples", timeout=20)


def test_server_log_view(server: ServerProcess, browser: Any) -> None:
    open_page(browser, server, "logs")
    wait_text(browser, "#log-stream", "HTTP API listening")
    wait_text(browser, "#log-stream", "rustqueue.http")


def test_without_the_websocket_plugin_the_page_says_so(tmp_path: Path, browser: Any) -> None:
    bare = start_server(tmp_path, "http,dashboard")
    try:
        with httpx.Client(base_url=bare.url, timeout=10) as client:
            push(client, "br-bare")
        browser.get(f"{bare.url}/dashboard#/queues")
        wait_text(browser, "#queue-list", "br-bare")
        wait_text(browser, "#conn", "no event stream")
    finally:
        stop_server(bare)


def test_every_page_renders_without_script_errors(server: ServerProcess, api: httpx.Client, browser: Any) -> None:
    job_id = push(api, "br-pages")
    browser.get_log("browser")  # drop what earlier tests left
    for route, ready in (
        ("overview", "#overview-cards .card"),
        ("queues", "#queue-list tbody tr"),
        ("queues/br-pages", "#chart-rates svg"),
        ("jobs", "#job-list tbody tr"),
        (f"jobs/{job_id}", "#job-data pre"),
        ("dlq", "#dlq-queues .pill"),
        ("schedules", "#create-schedule-form"),
        ("events", "#event-stream"),
        ("logs", "#log-stream .row"),
    ):
        open_page(browser, server, route)
        wait_until(browser, lambda d, css=ready: rows(d, css), f"{route} never rendered")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_auth_on_protects_the_page_behind_a_sign_in_page(tmp_path: Path, browser: Any) -> None:
    env = {"RUSTQUEUE_AUTH_ENABLED": "true", "RUSTQUEUE_AUTH_TOKENS": "s3cret-token"}
    secured = start_server(tmp_path, "http,websocket,dashboard,auth", extra_env=env)
    try:
        with httpx.Client(base_url=secured.url, timeout=10) as client:
            assert client.get("/dashboard").status_code == 401
            assert client.get("/dashboard/api/overview").status_code == 401
            headers = {"Authorization": "Bearer s3cret-token"}
            assert client.get("/dashboard", headers=headers).status_code == 200
            assert client.get("/dashboard/api/overview", headers=headers).status_code == 200
            push(client.__class__(base_url=secured.url, headers=headers), "br-auth")
        browser.get(f"{secured.url}/dashboard#/overview")
        wait_text(browser, "#reason", "Authentication required")
        find(browser, "#token-input").send_keys("wrong-token")
        click(browser, "#token-submit")
        wait_text(browser, "#reason", "not accepted")
        find(browser, "#token-input").send_keys("s3cret-token")
        click(browser, "#token-submit")
        wait_until(browser, lambda d: card_value(d, "waiting") == "1", "the overview loaded with the token")
        wait_until(browser, lambda d: "live" in attrs_of(d, "#conn", "class")[0], "WebSocket with ?token=")
        browser.refresh()  # the token is kept for the tab: no second prompt
        wait_until(browser, lambda d: card_value(d, "waiting") == "1", "reload without a prompt")
        assert not rows(browser, "#token-input")
        assert text_of(browser, "#signout") == "Sign out"
        click(browser, "#signout")  # forgets the token and the cookie: the page is closed again
        browser.refresh()
        wait_text(browser, "#reason", "Authentication required")
    finally:
        browser.execute_script("sessionStorage.clear()")
        browser.delete_all_cookies()
        stop_server(secured)


# --------------------------------------------------------------------------- screenshots


def traffic(client: httpx.Client, seconds: float) -> None:
    """Pushes and acks at a varying pace, so the charts have a shape."""
    import math
    import time

    started = time.monotonic()
    step = 0
    while time.monotonic() - started < seconds:
        step += 1
        burst = 3 + int(4 * (1 + math.sin(step / 3)))
        for queue, name in (("emails", "send-welcome"), ("image-resize", "thumbnail")):
            jobs = [{"name": name, "data": {"user": 1000 + step * 10 + i}} for i in range(burst)]
            client.post(f"/api/v1/queues/{queue}/jobs", json=jobs)
            answer = client.get(f"/api/v1/queues/{queue}/jobs?count={max(2, burst - 2)}").json()
            pulled = answer.get("jobs") or []
            for job in pulled:
                client.post(f"/api/v1/jobs/{job['id']}/ack", json={"lease_token": job["lease_token"]})
        time.sleep(0.25)


def seed_demo(client: httpx.Client) -> dict[str, str]:
    """A small but realistic picture: queues of every kind, dead jobs, a DAG flow, schedules."""
    client.post("/dashboard/api/queues", json={"name": "orders", "ordering": "min_first", "allow_duplicates": False})
    client.post("/dashboard/api/queues", json={"name": "reports", "ordering": "fifo"})
    for i in range(4):
        client.post("/dashboard/api/queues/orders/publish", json={"payload": f'{{"order": {5100 + i}}}', "priority": i})
    errors = [
        "SMTPRecipientsRefused: 550 5.1.1 mailbox unavailable",
        "TimeoutError: no answer from smtp.example.com:587 after 30000 ms",
        "SMTPRecipientsRefused: 550 5.1.1 mailbox unavailable",
    ]
    for error in errors:
        dead_job(client, "emails", error, name="send-welcome", data={"to": "someone@example.com"})
    dead_job(client, "image-resize", "PIL.UnidentifiedImageError: cannot identify image file", name="thumbnail")
    for i in range(6):
        push(client, "emails", name="send-digest", data={"user": 42 + i}, delay_ms=3_600_000, tags=["digest"])
    extract = push(client, "reports", name="extract", data={"month": "2026-11"}, flow_id="report-2026-11", tags=["etl"])
    transform = push(
        client, "reports", name="transform", data={"month": "2026-11"}, flow_id="report-2026-11",
        depends_on=[extract], tags=["etl"],
    )  # fmt: skip
    push(client, "reports", name="load", data={"table": "monthly"}, flow_id="report-2026-11", depends_on=[transform])
    pulled = client.get("/api/v1/queues/reports/jobs").json()["job"]
    client.post(f"/api/v1/jobs/{pulled['id']}/progress", json={"progress": 60, "lease_token": pulled["lease_token"]})
    for body in (
        {"name": "nightly-digest", "queue": "emails", "job_name": "send-digest", "cron_expr": "0 2 * * *"},
        {"name": "cleanup-tmp", "queue": "maintenance", "job_name": "cleanup", "every_ms": 300_000},
        {"name": "weekly-report", "queue": "reports", "job_name": "extract", "cron_expr": "0 6 * * 1"},
    ):
        client.post("/api/v1/schedules", json={**body, "run_immediately": False})
    client.post("/api/v1/schedules/weekly-report/pause")
    client.post("/api/v1/queues/maintenance/jobs", json={"name": "cleanup", "data": {}})
    client.post("/api/v1/queues/maintenance/pause")
    return {"transform": transform}


def test_screenshots_of_every_page(tmp_path: Path, browser: Any, shots: Path) -> None:
    import threading
    import time

    config = "[dashboard]\nsample_interval_s = 0.5\n"
    demo = start_server(tmp_path, "http,websocket,dashboard", config=config)
    try:
        with httpx.Client(base_url=demo.url, timeout=10) as client:
            ids = seed_demo(client)
            open_page(browser, demo, "events")
            wait_until(browser, lambda d: "live" in attrs_of(d, "#conn", "class")[0], "WebSocket connected")
            with httpx.Client(base_url=demo.url, timeout=10) as traffic_client:
                runner = threading.Thread(target=traffic, args=(traffic_client, 8.0))
                runner.start()
                wait_until(browser, lambda d: len(rows(d, "#event-stream .row")) >= 12, "events streamed")
                runner.join(timeout=30)
            time.sleep(1.5)  # let the highlight of the newest rows fade
            screenshot(browser, shots, "events")
            pages = [
                ("overview", "overview", "#overview-cards .card"),
                ("queues", "queues", "#queue-list tbody tr"),
                ("queue", "queues/emails", "#chart-rates path.line"),
                ("jobs", "jobs?queue=emails", "#job-list tbody tr"),
                ("job", f"jobs/{ids['transform']}", "#job-children tbody tr"),
                ("dlq", "dlq?queue=emails", "#dlq-list tbody tr"),
                ("schedules", "schedules", "#schedule-list tbody tr"),
                ("logs", "logs", "#log-stream .row"),
            ]
            for name, route, ready in pages:
                tall = name in ("queue", "job")
                browser.set_window_size(1440, 1300 if tall else 900)
                open_page(browser, demo, route)
                wait_until(browser, lambda d, css=ready: rows(d, css), f"{name} page never filled")
                if name == "queue":
                    click(browser, "#consume-message")
                    find(browser, "#consumed-message")
                browser.execute_script("document.activeElement && document.activeElement.blur()")
                screenshot(browser, shots, name)
            browser.set_window_size(1440, 900)
    finally:
        stop_server(demo)
    assert len(list(shots.glob("dashboard-*.png"))) >= 9
