"""The page served at ``/``."""

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
<p>rustqueue is a job queue you can embed in a Python program or run as a server. One process,
one file of storage, no broker to operate.</p>
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
</ul>
</body>
</html>
"""
