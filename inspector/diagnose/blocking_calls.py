"""Which call held the event loop, in its own words, with the fix that fits it.

A stall's stack says where the loop thread was; this table says what that call is: waiting for
a threading lock is not CPU-bound code, a DNS lookup is not "socket", `lzma.compress` is not
"code in relay_batch". Calls into C (`zlib.compress`, `pickle.dumps`, `Lock.acquire`,
`os.fsync`) leave no frame of their own, so the line that calls them is read too. Pure data
and matching: `rules/loop.py` words its findings with what `identify` returns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from inspector.diagnose.locate import is_application_frame, module_of
from inspector.model import Frame


@dataclass(frozen=True)
class Family:
    """A kind of blocking call: its words and its fix."""

    noun: str
    """What blocked the loop, for titles: "a DNS lookup"."""
    doing: str
    """What the loop thread was doing, for sentences: "resolving a host name"."""
    hint: str


THREAD_LOCK: Final = Family(
    "waiting for a threading lock",
    "waiting for a threading lock that another thread holds",
    "The loop thread waits for a `threading.Lock` (or RLock, Semaphore, Condition) that another "
    "thread holds, so the whole loop stops until that thread lets go. Do not share threading "
    "locks between the loop and threads that hold them for long: keep the thread's critical "
    "section short (build the new value outside it, swap it in under the lock), use an "
    "`asyncio.Lock` among coroutines, or take the lock in a thread "
    "(`await asyncio.to_thread(...)`).",
)
THREAD_WAIT: Final = Family(
    "waiting for another thread",
    "waiting for another thread to finish its work",
    "The loop thread waits for another thread (`Future.result()`, `Thread.join()`, "
    "`queue.Queue.get()`, a threading Event). Await it instead: "
    "`await asyncio.wrap_future(future)`, `await asyncio.to_thread(...)`, or an "
    "`asyncio.Queue`. If that thread needs the loop to finish, this never ends.",
)
NETWORK: Final = Family(
    "a blocking network call",
    "waiting for a blocking network call to answer",
    "A blocking network client runs on the event loop, so every request waits for the remote "
    "side. Use an async client (httpx.AsyncClient, aiohttp; asyncio streams for raw sockets), "
    "or move the call off the loop with `await asyncio.to_thread(...)`, or declare the endpoint "
    "with plain `def`. Give it a timeout either way.",
)
DNS: Final = Family(
    "a DNS lookup",
    "resolving a host name (a blocking DNS lookup)",
    "`socket.getaddrinfo`/`gethostbyname` block until the resolver answers, seconds when it is "
    "slow. Resolve on the loop's resolver thread with `await loop.getaddrinfo(...)` (async "
    "clients already do), use aiodns, or cache the addresses.",
)
FILE_IO: Final = Family(
    "file I/O",
    "reading or writing files",
    "File I/O runs on the event loop, and disks (network mounts above all) can take long. Move "
    "it off the loop: `await asyncio.to_thread(...)`, anyio's `anyio.Path` / `open_file`, or "
    "aiofiles; batch small writes, and avoid `fsync` per record on the request path.",
)
COMPRESSION: Final = Family(
    "compression",
    "compressing or decompressing data",
    "Compression runs on the event loop. zlib, gzip, bz2 and lzma release the GIL while they "
    "work, so `await asyncio.to_thread(lzma.compress, data)` keeps the loop answering and "
    "really runs in parallel; a lower level or a faster codec (zstd, lz4) also helps.",
)
SERIALIZATION: Final = Family(
    "serialization",
    "serializing a large object",
    "A large object is serialized on the event loop. Serialize less (paginate, select fields), "
    "serialize in a thread (`await asyncio.to_thread(json.dumps, data)`) and return a "
    "`Response` with the bytes, or use a faster encoder (orjson; no `indent`, which makes "
    "json fall back to pure Python).",
)
SUBPROCESS: Final = Family(
    "a subprocess",
    "waiting for a subprocess",
    "A subprocess is run and waited for on the event loop. Use "
    "`await asyncio.create_subprocess_exec(...)` and `await proc.communicate()`, or run it in "
    "a thread.",
)
HASHING: Final = Family(
    "password hashing",
    "deriving a key or hashing a password",
    "Key derivation (bcrypt, scrypt, PBKDF2, argon2) is slow on purpose. Run it in a thread: "
    "`await asyncio.to_thread(...)`; most of these release the GIL while they work.",
)

LOGGING: Final = Family(
    "logging (a handler writing a record)",
    "writing a log record through a logging handler",
    "A logging handler writes each record on the event loop (a slow terminal, file or network "
    "handler blocks every request meanwhile). Hand records to a thread: a "
    "`logging.handlers.QueueHandler` on the loggers and a `QueueListener` that owns the real "
    "handlers; and log less on hot paths (uvicorn's `--no-access-log`).",
)
MODULES: Final[tuple[tuple[str, str | None, Family], ...]] = (
    # (module prefix, function name or None for any, family), most specific first.
    ("socket", "getaddrinfo", DNS),
    ("socket", "gethostbyname", DNS),
    ("socket", "getfqdn", DNS),
    ("threading", "Thread.join", THREAD_WAIT),
    ("threading", None, THREAD_WAIT),
    ("concurrent.futures", None, THREAD_WAIT),
    ("queue", None, THREAD_WAIT),
    ("requests", None, NETWORK),
    ("urllib3", None, NETWORK),
    ("httpx", None, NETWORK),
    ("httpcore", None, NETWORK),
    ("urllib.request", None, NETWORK),
    ("http.client", None, NETWORK),
    ("smtplib", None, NETWORK),
    ("ftplib", None, NETWORK),
    ("ssl", None, NETWORK),
    ("socket", None, NETWORK),
    ("botocore", None, NETWORK),
    ("gzip", None, COMPRESSION),
    ("bz2", None, COMPRESSION),
    ("lzma", None, COMPRESSION),
    ("zipfile", None, COMPRESSION),
    ("tarfile", None, COMPRESSION),
    ("brotli", None, COMPRESSION),
    ("zstandard", None, COMPRESSION),
    ("lz4", None, COMPRESSION),
    ("json", None, SERIALIZATION),
    ("pickle", None, SERIALIZATION),
    ("yaml", None, SERIALIZATION),
    ("xml", None, SERIALIZATION),
    ("csv", None, SERIALIZATION),
    ("fastapi.encoders", None, SERIALIZATION),
    ("pydantic", None, SERIALIZATION),
    ("pydantic_core", None, SERIALIZATION),
    ("subprocess", None, SUBPROCESS),
    ("logging", None, LOGGING),
    ("shutil", None, FILE_IO),
    ("pathlib", None, FILE_IO),
    ("tempfile", None, FILE_IO),
    ("glob", None, FILE_IO),
    ("os", None, FILE_IO),
    ("io", None, FILE_IO),
    ("codecs", None, FILE_IO),
    ("bcrypt", None, HASHING),
    ("passlib", None, HASHING),
    ("argon2", None, HASHING),
)
"""Library code on the stack below the application's line, and what it is."""

_CALL: Final = r"\s*\("
LINES: Final[tuple[tuple[re.Pattern[str], Family], ...]] = (
    (
        re.compile(
            rf"\b(socket\.)?(getaddrinfo|gethostbyname(_ex)?|gethostbyaddr|getnameinfo){_CALL}"
        ),
        DNS,
    ),
    (re.compile(rf"\b(\w+\.)?(pbkdf2_hmac|scrypt|hashpw|kdf){_CALL}"), HASHING),
    (
        re.compile(
            r"\b(zlib|gzip|bz2|lzma|brotli|zstd|zstandard|lz4(\.frame)?|snappy)\."
            rf"(compress|decompress)\w*{_CALL}|\.(compress|decompress){_CALL}"
        ),
        COMPRESSION,
    ),
    (
        re.compile(
            rf"\b(json|pickle|marshal|orjson|ujson|msgpack|yaml|cbor2?)\.(dumps?|loads?){_CALL}"
            r"|\.(model_dump_json|model_dump)\("
        ),
        SERIALIZATION,
    ),
    (
        # `with x:` calling nothing: only a lock written in C enters without a frame of its own
        re.compile(rf"^with\s+[\w.\[\]'\"]+\s*:|^with\s+\w*lock\w*\(|\.acquire{_CALL}", re.I),
        THREAD_LOCK,
    ),
    (re.compile(rf"\.(result|join){_CALL}"), THREAD_WAIT),
    (re.compile(rf"\burlopen{_CALL}|\brequests\.\w+{_CALL}"), NETWORK),
    (re.compile(rf"\.(recv|recv_into|recvfrom|sendall|send|accept|connect){_CALL}"), NETWORK),
    (
        re.compile(
            r"\bos\.(fsync|fdatasync|read|write|stat|lstat|listdir|scandir|walk|remove|unlink|"
            rf"rename|replace|makedirs|mkdir|rmdir|sync){_CALL}"
            rf"|(?<![\w.])open{_CALL}|\.(read|write|readlines|writelines|flush|read_text|"
            rf"read_bytes|write_text|write_bytes){_CALL}|\bshutil\."
        ),
        FILE_IO,
    ),
    (re.compile(rf"\bsubprocess\.|\bos\.(system|popen|wait){_CALL}"), SUBPROCESS),
)
"""The application's own line, when the call it makes is into C and leaves no frame."""


@dataclass(frozen=True)
class Call:
    """One identified blocking call."""

    family: Family
    name: str | None
    """The call itself when it can be named: "socket.getaddrinfo", "lzma.compress"."""

    @property
    def doing(self) -> str:
        """ "resolving a host name (a blocking DNS lookup) in socket.getaddrinfo"."""
        return f"{self.family.doing} in {self.name}" if self.name else self.family.doing

    @property
    def what(self) -> str:
        """ "a DNS lookup (socket.getaddrinfo)": the family, and the call when it is known."""
        return f"{self.family.noun} ({self.name})" if self.name else self.family.noun


def _family_of_module(frame: Frame) -> Family | None:
    module = module_of(frame)
    if module is None:
        return None
    function = frame.function.rsplit(".", 1)[-1]
    for prefix, name, family in MODULES:
        if (module == prefix or module.startswith(prefix + ".")) and name in (None, function):
            return family
    return None


def _call_of_line(code: str | None) -> Call | None:
    if not code or re.search(r"\bawait\b", code):
        return None
    for pattern, family in LINES:
        match = pattern.search(code)
        if match:
            name = match.group(0).rstrip("( ")
            return Call(family, None if family is THREAD_LOCK or ":" in name else name)
    return None


def _async_entry(frame: Frame) -> bool:
    return frame.function.split(".")[0].startswith("Async")


def _entry_name(frame: Frame) -> str | None:
    module = module_of(frame)
    if module is None:
        return None
    function = frame.function.rsplit(".", 1)[-1]
    return module if function.startswith("<") else f"{module}.{function}"


def identify(stack: Sequence[Frame]) -> Call | None:
    """What the call at the bottom of a stalled loop thread's stack is (outermost frame first),
    or None when it is none of the table's (plain Python: CPU-bound code, or unknown).

    The library frames below the application's innermost line decide, the innermost one
    recognised first (a DNS lookup inside `socket.create_connection` inside urllib is a DNS
    lookup), named by the call the application made; with none, the text of the innermost line
    (a call into C leaves no frame of its own)."""
    if not stack:
        return None
    last_app = next(
        (index for index in range(len(stack) - 1, -1, -1) if is_application_frame(stack[index])),
        -1,
    )
    below = stack[last_app + 1 :]
    for frame in below:
        if module_of(frame) == "threading" and frame.function.endswith(".acquire"):
            return Call(THREAD_LOCK, _entry_name(frame))  # a Semaphore: a Condition underneath
    for frame in reversed(below):
        family = _family_of_module(frame)
        if family is not None:
            entry = below[0]
            # The async half of a client (httpx.AsyncClient() loading certificates) is not the
            # blocking call its module is known for: name what blocked.
            same = _family_of_module(entry) is family and not _async_entry(entry)
            if family is LOGGING:
                return Call(family, None)  # "logging.emit" says nothing the noun does not
            return Call(family, _entry_name(entry if same else frame))
    return _call_of_line(stack[-1].code)
