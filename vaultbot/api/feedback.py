"""`POST /feedback`: a thumbs up or down on a logged answer."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from vaultbot.api.security import auth
from vaultbot.api.state import ApiState, state

router = APIRouter(dependencies=[Depends(auth)])


class FeedbackIn(BaseModel):
    query_id: int
    value: Literal[1, -1]
    note: str | None = Field(None, max_length=2000)


@router.post("/feedback")
async def feedback(body: FeedbackIn, s: ApiState = Depends(state)) -> Any:
    if not await asyncio.to_thread(s.querylog.feedback, body.query_id, body.value, body.note):
        raise HTTPException(404, f"no query {body.query_id}")
    return {"ok": True}
