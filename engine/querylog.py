"""The query log: one row per question with stage timings, cache layer, model, sources,
citation counts and feedback, the answer shown, who asked (a chat user id, "cli"; none for the
API, MCP and /v1) and the posted answer's permalink when known. `summary()` and `disliked()`
are what `vaultbot stats` prints; `recent_for()` is a person's App Home."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, literal, select, update

from engine import schema as t
from engine.registry import Registry


class QueryLog:
    def __init__(self, registry: Registry, *, enabled: bool = True) -> None:
        self.registry = registry
        # False (VAULTBOT_QUERYLOG_DAYS=0): no question is ever written, so none can linger
        # until the next purge; answers then carry no query id to give feedback on.
        self.enabled = enabled

    def record(self, **row: Any) -> int | None:
        if not self.enabled:
            return None
        row.setdefault("at", time.time())
        with self.registry.engine.begin() as conn:
            return conn.execute(insert(t.query_log).values(**row)).inserted_primary_key[0]

    def set_link(self, query_id: int | None, link: str | None) -> bool:
        """The permalink of the posted (or shared) answer of a logged query, once known."""
        if query_id is None or not link or not self.enabled:
            return False
        with self.registry.engine.begin() as conn:
            n = conn.execute(update(t.query_log).where(t.query_log.c.id == query_id)
                             .values(link=link)).rowcount
        return n == 1

    def recent_for(self, user: str, channel_prefix: str, limit: int = 10) -> list[dict[str, Any]]:
        """`user`'s own latest questions asked at `channel_prefix` ("slack": `slack` and
        `slack:<channel>`), newest first: question, at, link. Never another person's: no user,
        no rows."""
        if not user or "query_log.user" in self.registry.absent_tables:
            return []
        ql = t.query_log
        q = (select(ql.c.question, ql.c.at, self._column("link"))
             .where(ql.c.user == user,
                    (ql.c.channel == channel_prefix) | ql.c.channel.startswith(f"{channel_prefix}:",
                                                                             autoescape=True))
             .order_by(ql.c.at.desc(), ql.c.id.desc()).limit(limit))
        with self.registry.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _column(self, name: str) -> Any:
        """An optional column (engine.migrations.OPTIONAL_COLUMNS) or NULL when an older
        read-only registry lacks it."""
        if f"query_log.{name}" in self.registry.absent_tables:
            return literal(None).label(name)
        return t.query_log.c[name]

    def feedback(self, query_id: int, value: int, note: str | None = None) -> bool:
        """Store 👍 (+1) or 👎 (-1) for a logged query; False if there is no such query."""
        if value not in (-1, 1):
            raise ValueError("feedback must be +1 or -1")
        with self.registry.engine.begin() as conn:
            n = conn.execute(update(t.query_log).where(t.query_log.c.id == query_id)
                             .values(feedback=value, feedback_note=note)).rowcount
        return n == 1

    def purge(self, older_than: float, now: float | None = None) -> int:
        """Delete rows logged more than `older_than` seconds before `now`; returns how many."""
        cutoff = (time.time() if now is None else now) - older_than
        with self.registry.engine.begin() as conn:
            return conn.execute(delete(t.query_log).where(t.query_log.c.at < cutoff)).rowcount

    def clear(self) -> int:
        """Delete the whole log; returns how many rows there were."""
        with self.registry.engine.begin() as conn:
            return conn.execute(delete(t.query_log)).rowcount

    def get(self, query_id: int) -> dict[str, Any] | None:
        with self.registry.engine.connect() as conn:
            r = conn.execute(select(t.query_log).where(t.query_log.c.id == query_id)).first()
        return dict(r._mapping) if r else None

    def disliked(self, limit: int = 10) -> list[dict[str, Any]]:
        """The latest 👎, newest first: when, where, the question, the answer given, its
        sources and the reason given (`vaultbot stats`), so the owner can fix the notes behind
        them."""
        q = (select(t.query_log.c.id, t.query_log.c.at, t.query_log.c.channel,
                    t.query_log.c.question, self._column("answer"), t.query_log.c.sources,
                    t.query_log.c.feedback_note)
             .where(t.query_log.c.feedback == -1)
             .order_by(t.query_log.c.at.desc(), t.query_log.c.id.desc()).limit(limit))
        with self.registry.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def summary(self, since: float | None = None) -> dict[str, Any]:
        q = select(t.query_log)
        if since is not None:
            q = q.where(t.query_log.c.at >= since)
        with self.registry.engine.connect() as conn:
            rows = conn.execute(q).all()
            total = conn.execute(select(func.count()).select_from(t.query_log)).scalar_one()
        out: dict[str, Any] = {"queries": len(rows), "all_time": total}
        if not rows:
            return out
        def pct(values: list[float], p: float) -> float | None:
            return round(float(np.percentile(values, p)), 1) if values else None
        totals = [r.timings.get("total") for r in rows if r.timings.get("total") is not None]
        firsts = [r.timings.get("first_token") for r in rows if r.timings.get("first_token") is not None]
        models: dict[str, int] = {}
        for r in rows:
            key = r.model or r.mode
            models[key] = models.get(key, 0) + 1
        cached = [r.cached for r in rows if r.cached]
        out.update({
            "cache_hit_rate": round(len(cached) / len(rows), 3),
            "cache_layers": {layer: cached.count(layer) for layer in sorted(set(cached))},
            "total_ms": {"p50": pct(totals, 50), "p95": pct(totals, 95)},
            "first_token_ms": {"p50": pct(firsts, 50), "p95": pct(firsts, 95)},
            "models": models,
            "extractive": sum(1 for r in rows if r.mode == "extractive"),
            "unsupported_rate": round(sum(1 for r in rows if r.unsupported) / len(rows), 3),
            "citations_invalid": sum(r.citations_invalid for r in rows),
            "errors": sum(1 for r in rows if r.error),
            "feedback": {"up": sum(1 for r in rows if r.feedback == 1),
                         "down": sum(1 for r in rows if r.feedback == -1)},
        })
        return out
