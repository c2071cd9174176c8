"""The public pages: the landing page at ``/`` and the short guides linked from it (``/examples``,
``/production`` and two ``/blog`` articles), at the paths RustQueue 0.3 serves them."""

from __future__ import annotations

LANDING_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rustqueue: Background Jobs Without Infrastructure</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem;
         line-height: 1.5; color: #1d2330; }
  h1 { font-size: 2.2rem; margin-bottom: .2rem; }
  code, pre { background: #f2f4f8; border-radius: 4px; padding: .1rem .3rem; }
  pre { padding: .8rem; overflow-x: auto; }
  a { color: #2150c8; }
</style>
</head>
<body>
<h1>Background Jobs Without Infrastructure</h1>
<p class="tagline">Queueing Infrastructure Without the Ops Tax</p>
<p>rustqueue is a job queue you can embed in a Python program or run as a server. One process,
one file of storage, no broker to operate. It speaks the RustQueue 0.3 HTTP and TCP protocols, so
RustQueue client SDKs work against it unchanged.</p>
<h2>Push a job</h2>
<pre>curl -X POST localhost:6790/api/v1/queues/emails/jobs \\
  -H 'Content-Type: application/json' \\
  -d '{"name": "send-welcome", "data": {"to": "a@example.com"}}'</pre>
<h2>Pull it</h2>
<pre>curl localhost:6790/api/v1/queues/emails/jobs</pre>
<ul>
  <li><a href="/api/v1/docs">API reference</a> (<a href="/api/v1/openapi.json">OpenAPI document</a>)</li>
  <li><a href="/api/v1/health">Health</a></li>
  <li><a href="/dashboard">Dashboard</a> (when installed)</li>
  <li><a href="/examples">Examples</a>, <a href="/production">running in production</a></li>
  <li><a href="/blog/background-jobs-without-redis">Background jobs without Redis</a>,
      <a href="/blog/crash-safe-email-queue">a crash-safe email queue</a></li>
</ul>
</body>
</html>
"""


def _guide_page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>rustqueue: {title}</title>\n"
        "<style>body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem;"
        " line-height: 1.5; color: #1d2330; } code, pre { background: #f2f4f8; border-radius: 4px;"
        " padding: .1rem .3rem; } pre { padding: .8rem; overflow-x: auto; } a { color: #2150c8; }</style>\n"
        f'</head>\n<body>\n<p><a href="/">rustqueue</a></p>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n'
    )


#: Path → HTML of the guides; all public, like ``/``.
GUIDE_PAGES: dict[str, str] = {
    "/examples": _guide_page(
        "Examples",
        """<h2>HTTP</h2>
<pre>curl -X POST localhost:6790/api/v1/queues/emails/jobs -H 'Content-Type: application/json' \\
  -d '{"name": "send-welcome", "data": {"to": "a@example.com"}, "max_attempts": 5}'
curl 'localhost:6790/api/v1/queues/emails/jobs?count=10'
curl -X POST localhost:6790/api/v1/jobs/JOB_ID/ack -H 'Content-Type: application/json' \\
  -d '{"result": {"sent": true}}'
curl -X POST localhost:6790/api/v1/jobs/JOB_ID/fail -H 'Content-Type: application/json' \\
  -d '{"error": "smtp timeout"}'</pre>
<h2>TCP (newline-delimited JSON on port 6789)</h2>
<pre>{"cmd": "push", "queue": "emails", "name": "send-welcome", "data": {}, "options": {"priority": 5}}
{"cmd": "pull", "queue": "emails", "count": 10}
{"cmd": "ack", "id": "JOB_ID"}</pre>
<h2>Schedules</h2>
<pre>curl -X POST localhost:6790/api/v1/schedules -H 'Content-Type: application/json' \\
  -d '{"name": "nightly-report", "queue": "reports", "job_name": "build", "cron_expr": "0 2 * * *"}'</pre>""",
    ),
    "/production": _guide_page(
        "Running in production",
        """<ul>
<li>Turn on bearer tokens: <code>[auth] enabled = true</code> and <code>tokens = ["..."]</code>; HTTP clients
send <code>Authorization: Bearer &lt;token&gt;</code>, TCP clients send <code>{"cmd": "auth", "token": "..."}</code>
first.</li>
<li>Keep the storage file on a persistent volume and back it up; every acknowledged write is on disk.</li>
<li>Stop with SIGTERM or SIGINT: the server stops accepting, lets active jobs finish or returns them, and exits 0.</li>
<li>Scrape <code>/api/v1/metrics/prometheus</code> and probe <code>/api/v1/health</code>.</li>
<li>Workers should heartbeat long jobs and set <code>timeout_ms</code>, so stalled jobs are retried.</li>
</ul>""",
    ),
    "/blog/background-jobs-without-redis": _guide_page(
        "Background jobs without Redis",
        """<p>A job queue does not need a broker. rustqueue keeps jobs in one storage file next to your
application, exposes them over HTTP and TCP, and retries failures with backoff before moving them to a
dead-letter queue.</p>
<p>Push with one request, pull with another, acknowledge when the work is done. Nothing else to run.</p>""",
    ),
    "/blog/crash-safe-email-queue": _guide_page(
        "A crash-safe email queue",
        """<p>Sending email is the classic background job: slow, flaky and never to be lost. Push one job per
message with <code>max_attempts</code> and a <code>unique_key</code> so a double submit sends once.</p>
<p>A worker pulls, sends and acknowledges. If it crashes mid-send, the job's lease expires and it is
delivered again; if the SMTP server keeps failing, the job lands in the dead-letter queue
(<code>/api/v1/queues/emails/dlq</code>) with its last error, ready for inspection.</p>""",
    ),
}
