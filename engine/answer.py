"""The question-answering pipeline: answer cache -> retrieve -> generate (streamed) -> verify
citations -> log. Front ends (CLI, HTTP, Slack, Discord) consume the same event stream."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.answer_cache import AnswerCache
from engine.citations import Citation, MarkerFilter, make_citations
from engine.extractive import extractive_answer
from engine.llm.base import Generator, LLMError
from engine.llm.queue import GenerationQueue, Queued
from engine.llm.routing import routing_reason
from engine.mask import default_masker
from engine.models import Hit, Scope, Turn
from engine.prompt import Budget, build_messages, question_language
from engine.provenance import note_visible, visible
from engine.querylog import QueryLog
from engine.retrieve import Retriever

log = logging.getLogger(__name__)

# Seconds the model's first piece may take before the quick answer is picked (see _generate):
# a local model's first token takes from ~0.2 s to 10-30 s, and below ~0.1 s nobody waits.
QUICK_AFTER = 0.1

NOTHING_FOUND = {
    "en": "I could not find anything about this in the notes.",
    "ko": "노트에서 이 질문에 관한 내용을 찾지 못했습니다.",
}
NO_EXTRACT = {
    "en": "The notes below matched the question, but no sentence in them answers it directly.",
    "ko": "아래 노트가 질문과 관련 있지만, 직접 답하는 문장은 찾지 못했습니다.",
}


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]  # the sources the text actually cites
    sources: list[Citation]  # every source given to the generator
    mode: str  # "llm" or "extractive"
    model: str | None
    cached: str | bool = False  # "answer", "retrieval", or False
    unsupported: bool = False
    invalid_citations: int = 0
    notice: str | None = None  # e.g. why this is extractive although an LLM is configured
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    query_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [
                {"n": c.n, "path": c.path, "title": c.title, "heading": c.heading, "page": c.page,
                 "uri": c.uri, "url": c.url, "page_url": c.page_url, "score": c.score,
                 "snippet": c.snippet}
                for c in self.citations
            ],
            "cached": self.cached,
            "mode": self.mode,
            "model": self.model,
            "unsupported": self.unsupported,
            "invalid_citations": self.invalid_citations,
            "notice": self.notice,
            "error": self.error,
            "timings": self.timings,
            "query_id": self.query_id,
        }

    def to_cache(self) -> dict[str, Any]:
        data = self.to_json()
        # Page links are signed for the place that asked: made again at each delivery.
        data["sources"] = [c.to_json() | {"page_url": None} for c in self.sources]
        data["citations"] = [c.to_json() | {"page_url": None} for c in self.citations]
        return data

    @classmethod
    def from_cache(cls, question: str, data: dict[str, Any]) -> Answer:
        return cls(
            question=question, text=data["answer"],
            citations=[Citation.from_json(c) for c in data["citations"]],
            sources=[Citation.from_json(c) for c in data["sources"]],
            mode=data["mode"], model=data["model"], unsupported=data["unsupported"],
            invalid_citations=data.get("invalid_citations", 0),
        )


async def _after(first: asyncio.Future[Any], rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A stream whose first item is already being awaited in `first`, then the rest of it."""
    try:
        item = await first
    except StopAsyncIteration:
        return
    yield item
    async for item in rest:
        yield item


@dataclass(frozen=True)
class Sources:
    citations: list[Citation]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


@dataclass(frozen=True)
class Failed:
    """Generation broke after part of the answer was streamed; `Done` still follows."""

    message: str


@dataclass(frozen=True)
class Quick:
    """Words on screen at once: right after `Sources`, when an LLM will write the answer, the
    extractive answer from the same sources (quoted from the notes, `[n]` as in `Sources`;
    `citations`: the sources it quotes). Front ends show it, labelled as quoted, until the
    first `Token` replaces it: a big model's first token can take 10-30 s."""

    text: str
    citations: list[Citation]


# `Queued(position)` (engine/llm/queue.py): the question waits for the model, `position`
# questions ahead; sent before the first token, again whenever the position changes.
Event = Sources | Quick | Token | Done | Failed | Queued


@dataclass
class AskOptions:
    scope: Scope = field(default_factory=Scope)
    history: list[Turn] = field(default_factory=list)
    deep: bool = False
    use_cache: bool = True
    channel: str = "cli"
    # Who asks, for the query log (a Slack or Discord user id, "cli"); None where no user is
    # known (the API, MCP, /v1). App Home lists a person's own questions by it.
    user: str | None = None
    # Secrets and personal data in the notes become "(masked)" before the prompt, the snippets
    # and the answer (VAULTBOT_MASK: bots and the API; the owner's CLI sees the notes as they are).
    mask: bool = False
    # Send `Quick` (the notes quoted) before generation; off for consumers that never show it.
    quick: bool = True


class Asker:
    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | None,
        *,
        cache: AnswerCache | None = None,
        querylog: QueryLog | None = None,
        vault_name: str = "vault",
        note_url: str = "",
        fast_model: str = "qwen2.5:7b-instruct",
        deep_model: str = "qwen2.5:32b-instruct",
        k: int = 6,
        budget: Budget | None = None,
        queue: GenerationQueue | None = None,
        page_link: Callable[[Citation, Scope], str | None] | None = None,
    ) -> None:
        self.retriever = retriever
        # The URL of a citation's note page for a place's scope (vaultbot/web/links.py, wired
        # by vaultbot/app.py); None: citations link as before.
        self.page_link = page_link
        self.generator = generator
        self.cache = cache
        self.querylog = querylog
        self.vault_name = vault_name
        self.note_url = note_url
        self.fast_model = fast_model
        self.deep_model = deep_model
        self.k = k
        self.budget = budget or Budget()
        self.queue = queue  # None: every question goes to the generator at once

    def choose_model(self, question: str, deep: bool) -> str:
        return self.deep_model if routing_reason(question, deep=deep) else self.fast_model

    async def ask(self, question: str, options: AskOptions | None = None) -> Answer:
        answer = None
        async for event in self.stream(question, options):
            if isinstance(event, Done):
                answer = event.answer
        assert answer is not None
        return answer

    async def stream(self, question: str, options: AskOptions | None = None) -> AsyncIterator[Event]:
        opts = options or AskOptions()
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def mark(stage: str, since: float) -> float:
            now = time.perf_counter()
            timings[stage] = round((now - since) * 1000, 2)
            return now

        model = self.choose_model(question, opts.deep) if self.generator is not None else None
        variant = f"{'llm' if self.generator else 'extractive'}|{model}|{self.k}"
        variant += "|masked" if opts.mask else ""  # a masked answer is never served unmasked
        key = AnswerCache.scope_key(opts.scope.key(), variant)
        # Follow-ups depend on the thread, so they are neither served from nor put in the cache.
        cacheable = self.cache is not None and opts.use_cache and not opts.history

        t = time.perf_counter()
        qvec = await asyncio.to_thread(self.retriever.embed_query, question)
        t = mark("embed", t)
        if cacheable:
            hit = await asyncio.to_thread(self.cache.lookup, key, qvec)  # type: ignore[union-attr]
            if hit is not None and not await asyncio.to_thread(self._may_show, hit.answer,
                                                               opts.scope):
                hit = None  # never served to a scope that may not see all of its sources
            t = mark("cache", t)
            if hit is not None:
                answer = Answer.from_cache(question, hit.answer)
                answer.cached = "answer"
                answer.sources = await asyncio.to_thread(self._linked, answer.sources,
                                                         opts.scope)
                by_n = {c.n: c for c in answer.sources}
                answer.citations = [by_n.get(c.n, c) for c in answer.citations]
                yield Sources(answer.sources)
                yield Token(answer.text)
                timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
                answer.timings = timings
                answer.query_id = await asyncio.to_thread(self._log, answer, opts)
                yield Done(answer)
                return

        if opts.history:  # earlier answers whose notes this place may no longer see go
            opts = replace(opts, history=await asyncio.to_thread(
                self._visible_history, opts.history, opts.scope))
        search_query = question
        if opts.history:  # "and when is it?" needs the thread's subject to retrieve anything
            search_query = f"{opts.history[-1].question}\n{question}"
        before = self.retriever.results.hits
        hits = await asyncio.to_thread(
            self.retriever.search, search_query, self.k, scope=opts.scope, use_cache=opts.use_cache,
            timings=timings,
        )
        retrieval_cached = self.retriever.results.hits > before
        t = mark("retrieve", t)
        if opts.mask:  # before the prompt, the extractive answer and the citations' snippets
            hits = default_masker().mask_hits(hits)
            t = mark("mask", t)
        citations = make_citations(hits, self.vault_name, self.note_url)
        citations = await asyncio.to_thread(self._linked, citations, opts.scope)
        yield Sources(citations)

        lang = question_language(question)
        answer = Answer(question, "", [], citations, "llm" if self.generator else "extractive", model,
                        cached="retrieval" if retrieval_cached else False)
        if not hits:
            answer.text, answer.unsupported, answer.model = NOTHING_FOUND[lang], True, None
            answer.mode = "extractive" if self.generator is None else "llm"
            yield Token(answer.text)
        elif self.generator is not None:
            start_quick = None
            if opts.quick:
                # Sentences by shared words and the asked-for kind of value, no embedding, so
                # Ollama stays free for the generation; picked on a thread (Kiwi's sentence
                # split, ~10-30 ms of CPU) once the model has kept the user waiting.
                def pick() -> Quick | None:
                    tq = time.perf_counter()
                    found = self._quick(question, hits, citations)
                    timings["quick"] = round((time.perf_counter() - tq) * 1000, 2)
                    return found

                def start_quick() -> asyncio.Future[Quick | None]:
                    return asyncio.ensure_future(asyncio.to_thread(pick))

            async for event in self._generate(question, hits, citations, model, opts, answer,
                                              timings, t, qvec, start_quick):
                yield event
        else:
            for event in await asyncio.to_thread(self._extract, question, hits, answer, qvec):
                yield event

        timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
        answer.timings = timings
        if cacheable and answer.error is None and answer.notice is None and hits:
            await asyncio.to_thread(
                self.cache.store, key, question, qvec, answer.to_cache(),  # type: ignore[union-attr]
                sorted({h.note_path for h in hits} | {p for h in hits for p in h.provenance}),
            )
        answer.query_id = await asyncio.to_thread(self._log, answer, opts)
        yield Done(answer)

    async def _generate(self, question: str, hits: list[Hit], citations: list[Citation],
                        model: str | None, opts: AskOptions, answer: Answer,
                        timings: dict[str, float], t: float, qvec: Any,
                        start_quick: Callable[[], asyncio.Future[Quick | None]] | None = None,
                        ) -> AsyncIterator[Event]:
        assert self.generator is not None
        messages, used = build_messages(question, hits, citations, opts.history, self.budget)
        marker = MarkerFilter(used)
        # The model may still repeat what the question or the thread held: the answer is masked
        # as it streams.
        masker = default_masker().stream() if opts.mask else None
        parts: list[str] = []
        generator = self.generator
        pieces: AsyncIterator[str | Queued]
        if self.queue is not None and model is not None:
            # The same prompt for the same place and mask shares one generation; a follow-up
            # never does (its thread is its own).
            key = None if opts.history else (
                opts.scope.key(), opts.mask, tuple((m.role, m.content) for m in messages))
            pieces = self.queue.stream(
                model, key, lambda: generator.stream(messages, model=model))
        else:
            pieces = generator.stream(messages, model=model)
        # The request goes out now. A question that must wait for a slot says so first
        # (`Queued` comes at once then), and the quick answer, picked at once, follows it.
        # Otherwise the quick answer is picked only if the model's first piece has not come
        # within QUICK_AFTER: a preview is worth its CPU (which on 2 cores the first token
        # would share) only when the model keeps the user waiting; it goes out unless the first
        # piece came while it was picked.
        full = (self.queue is not None and model is not None
                and self.queue.running(model) >= self.queue.limit(model))
        stream = pieces.__aiter__()
        first: asyncio.Future[str | Queued] = asyncio.ensure_future(stream.__anext__())
        quick: Quick | None = None
        try:
            if start_quick is not None and full:
                quick = await start_quick()  # shown after the `Queued` notice, below
            elif start_quick is not None:
                await asyncio.wait({first}, timeout=QUICK_AFTER)
                if not first.done():
                    quick_job = start_quick()
                    await asyncio.wait({first, quick_job}, return_when=asyncio.FIRST_COMPLETED)
                    if not first.done() and (found := quick_job.result()) is not None:
                        yield found
            async for piece in _after(first, stream):
                if isinstance(piece, Queued):
                    yield piece
                    if quick is not None:
                        yield quick
                        quick = None
                    continue
                quick = None  # the answer is here already (a generation shared with another)
                if "first_token" not in timings:
                    timings["first_token"] = round((time.perf_counter() - t) * 1000, 2)
                out = marker.feed(piece)
                if masker is not None:
                    out = masker.feed(out)
                if out:
                    parts.append(out)
                    yield Token(out)
            tail = marker.flush()
            if masker is not None:
                tail = masker.feed(tail) + masker.flush()
            if tail:
                parts.append(tail)
                yield Token(tail)
        except LLMError as exc:
            if masker is not None and (held := masker.flush()):  # the masker's held-back end
                parts.append(held)
                yield Token(held)
            if not parts:  # nothing shown yet: fall back to quoting the notes, and say why
                log.info("generation failed, answering extractively: %s", exc)
                answer.mode, answer.model = "extractive", None
                answer.notice = exc.user_message
                for event in await asyncio.to_thread(self._extract, question, hits, answer, qvec):
                    yield event
                return
            log.warning("generation broke mid-answer: %s", exc)
            answer.error = exc.user_message
            yield Failed(exc.user_message)
        finally:
            if not first.done():  # the consumer left before the model's first piece
                first.cancel()
        timings["generate"] = round((time.perf_counter() - t) * 1000, 2)
        answer.text = "".join(parts).strip()
        answer.invalid_citations = marker.removed
        answer.citations = [c for c in citations if c.n in marker.cited]
        answer.unsupported = not answer.citations

    def _linked(self, citations: list[Citation], scope: Scope) -> list[Citation]:
        """`citations` with their note page's URL for `scope`; a link that cannot be made
        leaves the citation as it was (the answer matters more than the link)."""
        if self.page_link is None:
            return citations
        out = []
        for c in citations:
            try:
                url = self.page_link(c, scope)
            except Exception:
                log.warning("could not make a note page link", exc_info=True)
                url = None
            out.append(replace(c, page_url=url) if url else c)
        return out

    def _visible_history(self, history: list[Turn], scope: Scope) -> list[Turn]:
        """The turns whose cited notes `scope` may still see (a note made private, moved into
        a private folder or deleted since takes its answer out of the conversation)."""
        paths = {p for turn in history for p in turn.sources or ()}
        if not paths:
            return list(history)
        notes = self.retriever.index.registry.note_info(paths)
        return [turn for turn in history
                if all(note_visible(scope, notes.get(p)) for p in turn.sources or ())]

    def _may_show(self, cached: dict[str, Any], scope: Scope) -> bool:
        """May `scope` see every source of a cached answer, as the notes are now?"""
        ids = [c.get("chunk_id") for c in cached.get("sources", [])]
        if not ids or not all(ids):
            return False
        registry = self.retriever.index.registry
        chunks = registry.chunks_by_id(ids, text=False)  # visibility needs no text
        return len(chunks) == len(set(ids)) and visible(scope, chunks.values(), registry) == set(ids)

    async def find(self, query: str, scope: Scope, *, k: int = 8,
                   mask: bool = False) -> list[Citation]:
        """The passages `scope` may see for `query`, cited and linked as an answer's sources
        are (a search command in a chat front end)."""
        hits = await asyncio.to_thread(self.retriever.search, query, k, scope=scope)
        if mask:
            hits = default_masker().mask_hits(hits)
        citations = make_citations(hits, self.vault_name, self.note_url)
        return await asyncio.to_thread(self._linked, citations, scope)

    def _quick(self, question: str, hits: list[Hit], citations: list[Citation]) -> Quick | None:
        try:
            text, cited = extractive_answer(question, hits)
        except Exception:  # a preview: never worth the answer
            log.warning("the quick answer failed", exc_info=True)
            return None
        if not text:
            return None
        return Quick(text, [c for c in citations if c.n in cited])

    def _extract(self, question: str, hits: list[Hit], answer: Answer, qvec: Any) -> list[Event]:
        embedder = self.retriever.index.embedder
        text, cited = extractive_answer(question, hits, query_vector=qvec,
                                        embed=embedder.embed_passages)
        answer.text = text or NO_EXTRACT[question_language(question)]
        answer.citations = [c for c in answer.sources if c.n in cited]
        answer.unsupported = not cited
        return [Token(answer.text)]

    def _log(self, answer: Answer, opts: AskOptions) -> int | None:
        if self.querylog is None:
            return None
        try:
            return self.querylog.record(
                channel=opts.channel, question=answer.question, scope=opts.scope.key(),
                mode=answer.mode, model=answer.model,
                cached=answer.cached if isinstance(answer.cached, str) else None,
                timings=answer.timings, sources=[c.path for c in answer.sources],
                citations_valid=len(answer.citations), citations_invalid=answer.invalid_citations,
                unsupported=answer.unsupported, error=answer.error or answer.notice,
                answer=answer.text, user=opts.user,
            )
        except Exception:  # the log must never cost the user the answer
            log.exception("could not write the query log")
            return None

