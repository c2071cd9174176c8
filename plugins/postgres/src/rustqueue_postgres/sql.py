"""SQL text of the PostgreSQL backend, built once per schema.

A batch is one statement. Inserts and transitions take one ``msgspec``-encoded JSON document read with
``json_to_recordset``; acks take parallel arrays. Whole jobs come back as JSON objects (``json_agg``
or one per row) decoded by typed ``msgspec`` decoders; claims and acks send them only for rows the
caller's row cache does not hold at the right ``rev``. ``bytea`` travels as base64 in both directions
(msgspec's encoding of ``bytes``).
"""

from __future__ import annotations

import re

from rustqueue_core.models import JOB_FIELDS
from rustqueue_postgres.schema import FINISHED_PREDICATE, JOB_COLUMNS

_COLUMN_LIST = ", ".join(JOB_COLUMNS)


def job_row(alias: str) -> str:
    """The select list of every Job field of row ``alias`` (``sort_key`` as base64): ``json_agg`` of
    such rows turns each into an object keyed by field name, cheaper than ``json_build_object``."""
    return ", ".join(
        f"translate(encode({alias}.sort_key, 'base64'), E'\\n', '') AS sort_key"
        if name == "sort_key"
        else f"{alias}.{name}"
        for name in JOB_FIELDS
    )


def row_json(alias: str) -> str:
    """The JSON object (text) of one Job row ``alias``, for use inside a select list."""
    return f"(SELECT row_to_json(x)::text FROM (SELECT {job_row(alias)}) x)"


def jobs_json(source: str, alias: str, *, extra: str = "", tail: str = "") -> str:
    """``SELECT`` of the JSON array (text) of the Job rows ``alias`` of ``source`` (+ ``extra``
    columns, which the Job decoder ignores), with ``tail`` (WHERE / ORDER BY) applied."""
    return f"SELECT json_agg(x)::text FROM (SELECT {job_row(alias)}{extra} FROM {source} {alias} {tail}) x"


def loose_queue_scan(name: str, jobs: str, where: str) -> str:
    """A recursive CTE ``name`` of the distinct queues of the rows matching ``where``, read with one
    index probe per queue (a loose index scan) from an index led by ``queue`` with that predicate."""
    return (
        f"{name} AS (SELECT min(queue) AS name FROM {jobs} WHERE {where} UNION ALL "
        f"SELECT (SELECT min(queue) FROM {jobs} WHERE {where} AND queue > {name}.name) FROM {name} "
        f"WHERE {name}.name IS NOT NULL)"
    )


def recordset_columns(columns: dict[str, str]) -> str:
    """Column definitions of a ``json_to_recordset`` alias; bytea travels as base64 text."""
    return ", ".join(f"{name} {'text' if t == 'bytea' else t}" for name, t in columns.items())


def recordset_columns_as_text(columns: dict[str, str]) -> str:
    """Like :func:`recordset_columns` with JSON columns read as text holding encoded JSON."""
    return ", ".join(f"{name} {'text' if t in ('bytea', 'json') else t}" for name, t in columns.items())


def from_recordset(alias: str, name: str, sql_type: str, *, json_as_text: bool = False) -> str:
    if sql_type == "bytea":
        return f"decode({alias}.{name}, 'base64')"
    if sql_type == "json" and json_as_text:
        # Casting text to json validates without unescaping, so "\u0000" inside payloads survives
        # (PostgreSQL cannot unescape it into text, which json_to_recordset would do).
        return f"{alias}.{name}::json"
    return f"{alias}.{name}"


#: Job columns stored as ``json``: pass them pre-encoded (as JSON strings) for the NUL-safe insert.
JSON_COLUMNS = tuple(name for name, t in JOB_COLUMNS.items() if t == "json")


class Statements:
    """Every fixed statement for one quoted schema name. ``notify`` adds ``pg_notify`` calls on the
    channel passed as the last parameter."""

    def __init__(self, schema: str, *, notify: bool) -> None:
        s = schema
        self.schema = s
        self.notify = notify
        jobs = f"{s}.jobs"
        self.jobs = jobs

        # ---- insert: ON CONFLICT DO NOTHING covers the primary key (a retried batch that already
        # committed) and the unique-key index; the caller inspects what was not inserted.
        values = ", ".join(from_recordset("x", n, t) for n, t in JOB_COLUMNS.items())
        insert_core = (
            f"INSERT INTO {jobs} ({_COLUMN_LIST}, writer) SELECT {values}, $2::bigint "
            f"FROM json_to_recordset($1::text::json) AS x({recordset_columns(JOB_COLUMNS)}) "
            "ON CONFLICT DO NOTHING RETURNING id, queue, state"
        )
        self.insert = (
            f"WITH ins AS ({insert_core}){self._notify_cte('ins', 3)} "
            f"SELECT array_agg(id){self._notify_count()} FROM ins"
        )
        text_values = ", ".join(from_recordset("x", n, t, json_as_text=True) for n, t in JOB_COLUMNS.items())
        insert_text_core = (
            f"INSERT INTO {jobs} ({_COLUMN_LIST}, writer) SELECT {text_values}, $2::bigint "
            f"FROM json_to_recordset($1::text::json) AS x({recordset_columns_as_text(JOB_COLUMNS)}) "
            "ON CONFLICT DO NOTHING RETURNING id, queue, state"
        )
        #: The same insert with JSON columns passed as encoded strings (payloads containing \u0000).
        self.insert_json_as_text = (
            f"WITH ins AS ({insert_text_core}){self._notify_cte('ins', 3)} "
            f"SELECT array_agg(id){self._notify_count()} FROM ins"
        )
        self.unique_holders = (
            f"SELECT j.queue, j.unique_key, j.id FROM {jobs} j "
            "JOIN unnest($1::text[], $2::text[]) AS k(queue, unique_key) "
            "ON j.queue = k.queue AND j.unique_key = k.unique_key "
            "WHERE j.state IN ('waiting', 'delayed', 'blocked', 'active')"
        )
        self.existing_ids = f"SELECT id FROM {jobs} WHERE id = ANY($1::text[])"
        self.get_jobs = jobs_json(jobs, "j", tail="WHERE j.id = ANY($1::text[])")
        #: Per parent id: its blocked children (for acks found already committed on a retry).
        self.blocked_children = (
            f"SELECT p.id, ARRAY(SELECT c.id FROM {jobs} c WHERE c.depends_on <> '{{}}' "
            "AND c.depends_on @> ARRAY[p.id] AND c.state = 'blocked') FROM unnest($1::text[]) AS p(id)"
        )
        self.cas_view = f"SELECT id, state, lease_token, worker_id, completed_at FROM {jobs} WHERE id = ANY($1::text[])"

        # ---- claim: waiting jobs plus delayed jobs already due (claims_due_delayed), each branch
        # an index scan that locks at most the limit; the union is ordered by sort_key once. One row
        # per claimed job: its rank in claim order, id and new rev, and the whole job as JSON only
        # when the claiming storage (the last parameter) was not the row's last writer (else its row
        # cache has it). The update finds the locked rows by ctid (see ``_claim_update``) and joins
        # ``picked`` only for each row's rank and previous writer: an ``UPDATE … FROM`` returns just
        # those columns, where a CTE returning ``j.*`` then joined stored every whole row (about 7%
        # of a batch-50 claim). In this template ``$3`` is the batch size; ``claim_for`` turns it into
        # a literal.
        self._claim_template = (
            "WITH picked AS (SELECT c.id, c.ctid, c.writer, row_number() OVER (ORDER BY c.sort_key) AS rn "
            f"FROM ({self._claimable('$3')}) c ORDER BY c.sort_key LIMIT $3) "
            f"UPDATE {jobs} j SET {self._claim_sets('$7::bigint', 'p.rn::int')} FROM picked p "
            f"WHERE j.ctid = ANY(ARRAY(SELECT t.ctid FROM picked t)) AND j.id = p.id "
            f"RETURNING p.rn, j.id, j.rev, CASE WHEN p.writer = $7::bigint THEN NULL ELSE {row_json('j')} END"
        )
        self._claim_by_size: dict[int, str] = {}
        self.group_lock = "SELECT pg_advisory_xact_lock(hashtext($1))"
        unsaturated = (
            "AND (j.group_id IS NULL OR NOT EXISTS ("
            "SELECT 1 FROM active a WHERE a.group_id = j.group_id AND a.n >= $7))"
        )
        self.claim_grouped = (
            "WITH active AS ("
            f"SELECT group_id, count(*) AS n FROM {jobs} WHERE queue = $1 AND state = 'active' "
            "AND group_id IS NOT NULL GROUP BY group_id), "
            f"cand AS ({self._claimable('$8', unsaturated)}), "
            "ranked AS (SELECT c.id, c.ctid, c.group_id, c.sort_key, "
            "row_number() OVER (PARTITION BY c.group_id ORDER BY c.sort_key) AS grn FROM cand c), "
            "picked AS (SELECT r.id, r.ctid, row_number() OVER (ORDER BY r.sort_key) AS rn FROM ranked r "
            "LEFT JOIN active a ON a.group_id = r.group_id "
            "WHERE r.group_id IS NULL OR r.grn + coalesce(a.n, 0) <= $7 ORDER BY r.sort_key LIMIT $3), "
            f"{self._claim_update('picked', 'NULL')} "
            f"SELECT ({jobs_json('upd', 'u')}), (SELECT count(*) FROM cand)"
        )

        # ---- complete: items as parallel arrays. ``expect`` is the rev the caller's row cache
        # predicts after this update: the whole job comes back as JSON only when the row's rev
        # differs. Blocked children are looked up per row only when any job is blocked on a parent
        # (one probe per statement, evaluated once).
        children = (
            f"CASE WHEN (SELECT EXISTS (SELECT 1 FROM {jobs} c WHERE c.state = 'blocked' AND c.depends_on <> '{{}}')) "
            f"THEN ARRAY(SELECT c.id FROM {jobs} c WHERE c.depends_on <> '{{}}' "
            "AND c.depends_on @> ARRAY[j.id] AND c.state = 'blocked') ELSE '{}'::text[] END"
        )
        self.complete = (
            f"UPDATE {jobs} j SET state = 'completed', result = i.result::json, completed_at = $7, "
            "updated_at = $7, lease_token = NULL, lease_expires_at = NULL, lease_ms = NULL, "
            "deadline_at = NULL, last_heartbeat = NULL, rev = j.rev + 1, writer = NULL "
            "FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) "
            "AS i(idx, id, result, lease_token, consumer_id, expect) "
            "WHERE j.id = i.id AND j.state = 'active' "
            "AND (i.lease_token IS NULL OR j.lease_token = i.lease_token) "
            "AND (i.consumer_id IS NULL OR j.worker_id = i.consumer_id) "
            f"RETURNING i.idx, {children}, CASE WHEN j.rev = i.expect THEN NULL ELSE {row_json('j')} END"
        )
        #: The common batch ack (no results, no credentials): ids and expected revs only; the first
        #: column is the item's position in ``$1`` (from 0).
        self.complete_plain = (
            f"UPDATE {jobs} j SET state = 'completed', result = 'null'::json, completed_at = $3, "
            "updated_at = $3, lease_token = NULL, lease_expires_at = NULL, lease_ms = NULL, "
            "deadline_at = NULL, last_heartbeat = NULL, rev = j.rev + 1, writer = NULL "
            "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS i(id, expect, n) "
            "WHERE j.id = i.id AND j.state = 'active' "
            f"RETURNING (i.n - 1)::int, {children}, CASE WHEN j.rev = i.expect THEN NULL ELSE {row_json('j')} END"
        )

        # ---- promote
        self.promote_due = (
            f"WITH due AS (SELECT id FROM {jobs} WHERE state = 'delayed' AND delay_until <= $1 "
            "ORDER BY delay_until LIMIT $2 FOR UPDATE SKIP LOCKED), "
            f"upd AS (UPDATE {jobs} j SET state = 'waiting', delay_until = NULL, updated_at = $1, "
            "rev = j.rev + 1, writer = NULL "
            f"FROM due WHERE j.id = due.id RETURNING j.id, j.queue, j.state){self._notify_cte('upd', 3)} "
            f"SELECT json_agg(json_build_array(id, queue))::text{self._notify_count()} FROM upd"
        )

        # ---- counts, names
        # Each state set is read from the index that holds it: waiting rows from the claim index, active
        # rows from the active index, the others from (queue, state, completed_at) (migration 4).
        finished = FINISHED_PREDICATE
        self.count_all = (
            f"SELECT queue, 'waiting', count(*) FROM {jobs} WHERE state = 'waiting' GROUP BY queue UNION ALL "
            f"SELECT queue, 'active', count(*) FROM {jobs} WHERE state = 'active' GROUP BY queue UNION ALL "
            f"SELECT queue, state, count(*) FROM {jobs} WHERE {finished} GROUP BY queue, state"
        )
        self.count_some = (
            f"SELECT queue, 'waiting', count(*) FROM {jobs} WHERE state = 'waiting' AND queue = ANY($1::text[]) "
            "GROUP BY queue UNION ALL "
            f"SELECT queue, 'active', count(*) FROM {jobs} WHERE state = 'active' AND queue = ANY($1::text[]) "
            "GROUP BY queue UNION ALL "
            f"SELECT queue, state, count(*) FROM {jobs} WHERE {finished} AND queue = ANY($1::text[]) "
            "GROUP BY queue, state"
        )
        # Loose index scans: one index probe per distinct queue instead of reading every row, over
        # each of the three indexes.
        waiting_names = loose_queue_scan("qw", jobs, "state = 'waiting'")
        active_names = loose_queue_scan("qa", jobs, "state = 'active'")
        other_names = loose_queue_scan("qo", jobs, finished)
        self.queue_names = (
            f"WITH RECURSIVE {waiting_names}, {active_names}, {other_names} "
            "SELECT name FROM qw WHERE name IS NOT NULL UNION SELECT name FROM qa WHERE name IS NOT NULL "
            "UNION SELECT name FROM qo WHERE name IS NOT NULL "
            f"UNION SELECT name FROM {s}.queue_configs ORDER BY 1"
        )
        self.rename_jobs = (
            f"WITH upd AS (UPDATE {jobs} SET queue = $2, updated_at = $3, rev = rev + 1, writer = NULL "
            "WHERE queue = $1 "
            f"RETURNING queue, state){self._notify_cte('upd', 4)} "
            f"SELECT count(*){self._notify_count()} FROM upd"
        )

        # ---- queue configs and schedules
        self.get_configs = f"SELECT config::text FROM {s}.queue_configs ORDER BY name"
        self.get_config = f"SELECT config::text FROM {s}.queue_configs WHERE name = $1"
        self.put_config = (
            f"INSERT INTO {s}.queue_configs (name, config) VALUES ($1, $2::text::json) "
            "ON CONFLICT (name) DO UPDATE SET config = excluded.config"
        )
        self.delete_config = f"DELETE FROM {s}.queue_configs WHERE name = $1"
        self.put_schedule = (
            f"INSERT INTO {s}.schedules (name, paused, next_run_at, schedule) "
            "VALUES ($1, $2, $3, $4::text::json) "
            "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, next_run_at = excluded.next_run_at, "
            "schedule = excluded.schedule"
        )
        self.get_schedule = f"SELECT schedule::text FROM {s}.schedules WHERE name = $1"
        self.lock_schedule = f"SELECT schedule::text FROM {s}.schedules WHERE name = $1 FOR UPDATE"
        self.list_schedules = f"SELECT schedule::text FROM {s}.schedules ORDER BY name"
        self.list_active_schedules = f"SELECT schedule::text FROM {s}.schedules WHERE NOT paused ORDER BY name"
        self.delete_schedule = f"DELETE FROM {s}.schedules WHERE name = $1 RETURNING name"

    def claim_for(self, n: int) -> str:
        """The claim of up to ``n`` jobs; parameters: queue, now, consumer id, lease tokens (16 bytes
        per job), lease ms, claiming storage id.

        The batch size is a literal, not a parameter. With ``LIMIT $n`` the server's generic plan
        assumes a tenth of the table is claimed, always loses to a custom plan, and so every claim is
        planned anew (about a third of a batch-50 claim). With a literal the cached plan is used."""
        text = self._claim_by_size.get(n)
        if text is None:
            text = self._claim_by_size[n] = _inline_parameter(self._claim_template, 3, n)
        return text

    # ------------------------------------------------------------------ pieces
    def _claimable(self, limit: str, extra: str = "") -> str:
        """Locked candidates of queue ``$1`` at time ``$2``: waiting, and delayed with
        ``delay_until <= $2``, neither expired, each branch limited to ``limit`` rows."""
        live = "(j.expires_at IS NULL OR j.expires_at > $2)"
        select = f"SELECT j.id, j.ctid, j.group_id, j.sort_key, j.writer FROM {self.jobs} j WHERE j.queue = $1"
        tail = f"ORDER BY j.sort_key LIMIT {limit} FOR UPDATE SKIP LOCKED"
        # Locking clauses are not allowed directly in UNION branches, but are in sub-selects.
        return (
            f"SELECT * FROM ({select} AND j.state = 'waiting' AND {live} {extra} {tail}) w UNION ALL "
            f"SELECT * FROM ({select} AND j.state = 'delayed' AND j.delay_until <= $2 AND {live} {extra} {tail}) d"
        )

    @staticmethod
    def _claim_sets(writer: str, rank: str) -> str:
        """The SET list of a claim of row ``j`` whose rank in claim order (from 1) is ``rank``,
        recording ``writer`` as the last writer."""
        return (
            "state = 'active', started_at = $2, updated_at = $2, deliveries = j.deliveries + 1, "
            f"rev = j.rev + 1, writer = {writer}, worker_id = $4, "
            f"lease_token = encode(substring($5::bytea, {rank} * 16 - 15, 16), 'hex'), "
            "lease_ms = $6::bigint, lease_expires_at = $2 + $6::bigint * interval '1 millisecond', "
            "deadline_at = CASE WHEN j.timeout_ms > 0 THEN $2 + j.timeout_ms * interval '1 millisecond' END, "
            "last_heartbeat = NULL, delay_until = NULL"
        )

    def _claim_update(self, picked: str, writer: str) -> str:
        """The claim of the ``picked`` rows (``id``, ``ctid``, rank ``rn``) as a CTE ``upd`` returning
        the claimed rows.

        The rows are found by the ctids their locking read returned, as one array: a TID scan, whatever
        the table's size and statistics. Joined to ``picked`` (by id or by ctid) the planner hashes a
        sequential scan of the whole table while it is small or freshly analyzed, which cost a third
        of a batch claim at a few thousand rows. The rows stay locked, so each ctid stays theirs; a row
        whose newest version the lock had to follow past the statement's snapshot is not visible to
        the TID scan and is left waiting (claimed next time), never claimed twice. A row's rank comes
        from the array of picked ids in claim order, built once. (The plain claim reaches its rows the
        same way, with ``picked`` joined only to the TID scan's rows.)"""
        rank = f"array_position((SELECT array_agg(r.id ORDER BY r.rn) FROM {picked} r), j.id)"
        return (
            f"upd AS (UPDATE {self.jobs} j SET {self._claim_sets(writer, rank)} "
            f"WHERE j.ctid = ANY(ARRAY(SELECT t.ctid FROM {picked} t)) RETURNING j.*)"
        )

    def _notify_cte(self, source: str, channel_param: int) -> str:
        if not self.notify:
            return ""
        return (
            f", notified AS MATERIALIZED (SELECT pg_notify(${channel_param}::text, q) AS sent FROM "
            f"(SELECT DISTINCT queue AS q FROM {source} WHERE state = 'waiting') z)"
        )

    def _notify_count(self) -> str:
        return ", (SELECT count(*) FROM notified)" if self.notify else ", 0"

    def transition(self, fields: tuple[str, ...]) -> str:
        """A batched compare-and-set setting ``fields`` from a JSON recordset (``u_<field>`` keys; JSON
        columns arrive as encoded strings)."""
        cols = {f"u_{name}": JOB_COLUMNS[name] for name in fields}
        definition = "idx integer, id text, expected text[], lease_token text, consumer_id text" + "".join(
            f", {c} {'text' if t in ('bytea', 'json') else t}" for c, t in cols.items()
        )
        sets = ", ".join(
            f"{name} = {from_recordset('i', f'u_{name}', JOB_COLUMNS[name], json_as_text=True)}" for name in fields
        )
        sets = f"{sets}, updated_at = $2" if sets else "updated_at = $2"
        sets = f"{sets}, rev = j.rev + 1, writer = NULL"
        return (
            f"WITH i AS (SELECT * FROM json_to_recordset($1::text::json) AS i({definition})), "
            f"upd AS (UPDATE {self.jobs} j SET {sets} FROM i WHERE j.id = i.id AND j.state = ANY(i.expected) "
            "AND (i.lease_token IS NULL OR j.lease_token = i.lease_token) "
            "AND (i.consumer_id IS NULL OR j.worker_id = i.consumer_id) RETURNING i.idx, j.*)"
            f"{self._notify_cte('upd', 3)} "
            f"SELECT json_agg(x)::text, array_agg(x.idx){self._notify_count()} "
            f"FROM (SELECT {job_row('u')}, u.idx AS idx FROM upd u) x"
        )


def _inline_parameter(text: str, position: int, value: int) -> str:
    """``text`` with parameter ``$position`` replaced by the integer literal ``value`` and the
    parameters after it renumbered down by one."""

    def renumber(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number == position:
            return str(int(value))
        return f"${number - 1}" if number > position else match.group(0)

    return re.sub(r"\$(\d+)", renumber, text)
