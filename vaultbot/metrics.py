"""The process's Prometheus counters. The app object owns one `Metrics` and hands it to every
front end (API, Slack, Discord, ...), so `/metrics` counts answers wherever they were asked."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from engine.answer import Answer


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.questions = Counter("vaultbot_questions_total", "Questions answered",
                                 ["mode", "cached", "channel"], registry=self.registry)
        self.errors = Counter("vaultbot_answer_errors_total", "Answers that ended in an error",
                              registry=self.registry)
        self.latency = Histogram("vaultbot_answer_seconds", "Time to a complete answer",
                                 ["mode"], registry=self.registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.first_token = Histogram("vaultbot_first_token_seconds", "Time to the first token",
                                     registry=self.registry,
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.invalid_citations = Counter("vaultbot_invalid_citations_total",
                                         "Citation markers removed because they matched no source",
                                         registry=self.registry)
        self.notes = Gauge("vaultbot_index_notes", "Notes in the registry", registry=self.registry)
        self.chunks = Gauge("vaultbot_index_chunks", "Chunks in the registry", registry=self.registry)
        self.vectors = Gauge("vaultbot_index_vectors", "Vectors in the store", registry=self.registry)

    def observe(self, answer: Answer, channel: str) -> None:
        self.questions.labels(answer.mode, str(answer.cached or "none"), channel).inc()
        self.latency.labels(answer.mode).observe(answer.timings.get("total", 0) / 1000)
        if "first_token" in answer.timings:
            self.first_token.observe(answer.timings["first_token"] / 1000)
        if answer.invalid_citations:
            self.invalid_citations.inc(answer.invalid_citations)
        if answer.error:
            self.errors.inc()
