"""The CLI as a client of a running `vaultbot serve` (as `ollama run` uses `ollama serve`):
serve records where it listens in the data dir (`serve.json`, owner-only), and `vaultbot ask` /
`search` send their request there instead of loading the index, the embedder and the model
themselves. Plain `http.client`, so this path imports next to nothing."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("vaultbot.client")

ADDRESS_FILE = "serve.json"
OWNER_HEADER = "X-Vaultbot-Owner"  # vaultbot.api.security.OWNER_HEADER (not imported: FastAPI)
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class ServeUnavailable(Exception):
    """serve could not answer, and nothing was printed yet: the CLI answers by itself."""


class ServeLost(Exception):
    """serve went away after part of the answer was printed."""


class Address(NamedTuple):  # not a dataclass: importing dataclasses costs the CLI 15-25 ms
    host: str
    port: int
    pid: int
    token: bool  # whether serve needs a bearer token (never the token itself)
    key: str  # the owner key: requests carrying it get the CLI's own view (see is_owner)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def new_owner_key() -> str:
    import secrets  # serve only: not on the CLI's path

    return secrets.token_urlsafe(32)


def write_address(data_dir: Path, *, host: str, port: int, token: bool, key: str) -> Path:
    """Records where this process serves, owner-only (0600), written whole or not at all."""
    path = data_dir / ADDRESS_FILE
    tmp = path.with_name(f".{ADDRESS_FILE}.{os.getpid()}")
    body = json.dumps({"host": _WILDCARD.get(host, host), "port": port, "pid": os.getpid(),
                       "token": token, "key": key})
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.replace(tmp, path)
    return path


def remove_address(data_dir: Path) -> None:
    """Removes the address file if this process wrote it (a newer serve may have replaced it)."""
    path = data_dir / ADDRESS_FILE
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but then the key will not match
        return True
    return True


def find_serve(data_dir: Path) -> Address | None:
    """The running serve's address, or None: no file, an unreadable one, or a stale one (its
    process is gone; a refused connection is found out on the request)."""
    try:
        raw = json.loads((data_dir / ADDRESS_FILE).read_text())
        address = Address(host=str(raw["host"]), port=int(raw["port"]), pid=int(raw["pid"]),
                          token=bool(raw["token"]), key=str(raw["key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(address.pid):
        log.info("ignoring %s: process %d is gone", ADDRESS_FILE, address.pid)
        return None
    return address


# A connection refused or cut, a timeout, a malformed reply: serve is not there (any more).
_GONE = (OSError, http.client.HTTPException)


class Client:
    def __init__(self, address: Address, token: str, timeout: float = 120.0) -> None:
        self.address = address
        self.timeout = timeout
        self.headers = {OWNER_HEADER: address.key, "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None
                 ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(self.address.host, self.address.port,
                                          timeout=self.timeout)
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except _GONE as exc:
            conn.close()
            raise ServeUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status != 200:
            # A wrong token, a request serve will not take (k > 50, ...), an error: nothing is
            # printed yet, so the CLI answers by itself, as it would without serve.
            detail = response.read(300).decode("utf-8", "replace")
            conn.close()
            raise ServeUnavailable(f"HTTP {response.status}: {detail}")
        return response

    def search(self, query: str, *, k: int, mode: str, folders: Sequence[str],
               tags: Sequence[str], where: Sequence[tuple[str, str]], private: bool,
               mask: bool) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [("q", query), ("k", k), ("mode", mode),
                                         ("private", str(private).lower()),
                                         ("mask", str(mask).lower())]
        params += [("folder", f) for f in folders] + [("tag", t) for t in tags]
        params += [("where", f"{key}={value}") for key, value in where]
        response = self._request("GET", "/search?" + urllib.parse.urlencode(params))
        try:
            return json.loads(response.read())["results"]
        except (*_GONE, ValueError, KeyError) as exc:
            raise ServeUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            response.close()

    def ask(self, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """The answer's Server-Sent Events as (name, data). A connection that fails raises
        ServeUnavailable; the caller turns it into ServeLost once it has printed something."""
        response = self._request("POST", "/ask", {**body, "stream": True})
        name: str | None = None
        data: list[str] = []
        try:
            while True:
                try:
                    raw = response.readline()
                except _GONE as exc:  # TimeoutError is an OSError
                    raise ServeUnavailable(f"{type(exc).__name__}: {exc}") from exc
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:  # an event ends at a blank line
                    if name is not None:
                        yield name, json.loads("\n".join(data))
                    name, data = None, []
                elif line.startswith(":"):  # keep-alive comment
                    continue
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        finally:
            response.close()
