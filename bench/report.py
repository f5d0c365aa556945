"""What every benchmark script does last: print its figures as JSON and, if asked, save them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(figures: dict[str, Any], path: Path | None) -> None:
    text = json.dumps(figures, indent=2, ensure_ascii=False)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
