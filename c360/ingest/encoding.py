"""What a landing CSV's bytes are, and a UTF-8 copy of them when DuckDB cannot read them as they are.

One streaming pass (``scan_bytes``) gives the file's SHA-256 (the load log's identity) and, at
little extra cost, what the reader needs to know: a byte-order mark, NUL bytes, and the first
byte that is not valid UTF-8. Valid UTF-8 (with or without a BOM, which DuckDB skips) is read by
DuckDB in place. Anything else is told apart by plausibility (``choose_encoding``), because
Windows-1252 decodes every byte sequence and GB18030 most Latin text: the choice looks at what
the non-ASCII bytes form. The file is then decoded strictly and written as UTF-8 to a scratch
folder (``utf8_copy``), NUL bytes dropped, a chunk at a time.

Errors name the file, a byte offset and the encodings tried, never the bytes themselves: a
landing line may hold personal data.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
TRIED = "UTF-8, UTF-8 with BOM, GB18030/GBK, Windows-1252/Latin-1"
# Python names of the encodings a file may be decoded from.
UTF8, UTF8_SIG, GB18030, CP1252 = "utf-8", "utf-8-sig", "gb18030", "cp1252"
# NUL bytes are padding or a glitch of the exporting tool (a file cut short and padded after a
# crash ends in thousands of them) and are dropped, wherever they are. Only UTF-16 without a
# byte-order mark is told by them: a NUL in every other byte of its start.
UTF16_HEAD, UTF16_NUL_SHARE = 4096, 0.4
BINARY_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an Excel .xls workbook",
}
# How much text around the first non-UTF-8 byte is weighed, and the share of its non-ASCII runs
# that must look like words of the chosen encoding.
SAMPLE_BEFORE, SAMPLE_AFTER = 64 << 10, 1 << 20
MIN_PLAUSIBLE = 0.5


class UndecodableFile(ValueError):
    """The bytes of a landing file are not text in any accepted encoding."""

    def __init__(self, problem: str, offset: int | None = None):
        self.problem, self.offset = problem, offset
        super().__init__(problem)


@dataclass(frozen=True)
class ByteScan:
    checksum: str
    size: int
    bom: bool  # a UTF-8 byte-order mark
    nul_bytes: int
    first_non_utf8: int | None  # offset of the first byte that breaks UTF-8, None when valid

    @property
    def utf8(self) -> bool:
        return self.first_non_utf8 is None


def _cp1252_or_latin1(exc: UnicodeDecodeError) -> tuple[str, int]:
    # Five bytes are unassigned in Windows-1252; ISO-8859-1 gives them their C1 code points, so
    # a Latin-1 file that uses them still decodes (and such characters count as implausible).
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("c360_latin1", _cp1252_or_latin1)


def scan_bytes(path: Path) -> ByteScan:
    """SHA-256, NUL count and UTF-8 validity in one pass over the file.

    ASCII chunks (``bytes.isascii``, a few GB/s) are never decoded; other chunks are decoded as
    UTF-8 until the first invalid byte, after which only the digest and the NUL count go on."""
    digest = hashlib.sha256()
    size = nuls = 0
    invalid: int | None = None
    carry = b""  # the start of a multi-byte character cut by the chunk boundary
    bom = False
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            if size == 0 and chunk.startswith(UTF8_BOM):
                bom = True
                chunk_for_text, base = chunk[len(UTF8_BOM) :], len(UTF8_BOM)
            else:
                chunk_for_text, base = chunk, size
            nuls += chunk.count(0)
            if invalid is None and (carry or not chunk_for_text.isascii()):
                data, base = carry + chunk_for_text, base - len(carry)
                carry = b""
                try:
                    data.decode(UTF8)
                except UnicodeDecodeError as exc:
                    if exc.end == len(data) and len(data) - exc.start < 4 and "unexpected end" in exc.reason:
                        carry = data[exc.start :]
                    else:
                        invalid = base + exc.start
            size += len(chunk)
    if carry and invalid is None:
        invalid = size - len(carry)
    return ByteScan(digest.hexdigest(), size, bom, nuls, invalid)


def _sample(path: Path, offset: int) -> bytes:
    """Whole lines around ``offset``: a line break is never part of a GB18030 or Windows-1252
    character, so the sample starts and ends on character boundaries."""
    start = max(0, offset - SAMPLE_BEFORE)
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(offset - start + SAMPLE_AFTER + 1)
    if start:
        data = data[data.find(b"\n") + 1 :]
    if len(data) > offset - start + SAMPLE_AFTER:
        data = data[: data.rfind(b"\n") + 1]
    return data.replace(b"\0", b"")


NON_ASCII_RUN = re.compile(rb"[\x80-\xff]+")


def plausibility(sample: bytes) -> dict[str, float]:
    """Share of the sample's runs of non-ASCII bytes that read as text in each encoding.

    GB18030: Chinese text is runs of whole two-byte GB2312 characters, mostly its first level
    (the 3,755 commonest hanzi) and punctuation. Latin bytes read as GB18030 pair an accented
    letter with the ASCII letter after it (a rare GBK extension character), fail to decode, or,
    for two lowercase accented letters (ção), give a second-level hanzi.
    Windows-1252: European text has one or two accented letters inside a word (é, ü, ñ, ção).
    Chinese read as Windows-1252 gives runs of four bytes and more, unattached to ASCII letters."""
    runs = list(NON_ASCII_RUN.finditer(sample))
    if not runs:
        return {GB18030: 0.0, CP1252: 0.0}
    # Each run is judged on its own: one broken byte must not hide that the rest is GB18030 (the
    # strict decode then names its offset).
    gb = latin = 0
    for match in runs:
        run = match.group()
        if _common_hanzi(run):
            gb += 1
        before = sample[match.start() - 1 : match.start()] if match.start() else b""
        after = sample[match.end() : match.end() + 1]
        inside_word = before.isalpha() or after.isalpha()
        if len(run) <= 2 and inside_word and run.decode(CP1252, errors="c360_latin1").isalpha():
            latin += 1
    return {GB18030: gb / len(runs), CP1252: latin / len(runs)}


def _common_hanzi(run: bytes) -> bool:
    """Whole GB2312 characters (lead 0xA1-0xF7, trail 0xA1-0xFE), at least half of them
    punctuation (lead 0xA1-0xA9) or first-level hanzi (lead 0xB0-0xD7)."""
    if len(run) % 2:
        return False
    pairs = [(run[i], run[i + 1]) for i in range(0, len(run), 2)]
    if not all(0xA1 <= lead <= 0xF7 and 0xA1 <= trail <= 0xFE for lead, trail in pairs):
        return False
    return 2 * sum(lead <= 0xA9 or 0xB0 <= lead <= 0xD7 for lead, _ in pairs) >= len(pairs)


def choose_encoding(path: Path, scan: ByteScan) -> str:
    """The encoding to read the file with (a Python codec name), or ``UndecodableFile``."""
    head = _head(path, UTF16_HEAD)
    if head[:2] in UTF16_BOMS:
        raise UndecodableFile(
            "starts with a UTF-16 byte-order mark: save it as UTF-8 (UTF-16 is not accepted)", 0
        )
    for magic, kind in BINARY_MAGIC.items():
        if head.startswith(magic):
            raise UndecodableFile(f"is {kind}, not CSV text", 0)
    if len(head) >= 16 and any(
        head[parity::2].count(0) > UTF16_NUL_SHARE * len(head[parity::2]) for parity in (0, 1)
    ):
        raise UndecodableFile(
            "has a NUL in every other byte: UTF-16 without a byte-order mark; save it as UTF-8 "
            f"(encodings accepted: {TRIED})",
            _first_nul(path),
        )
    if scan.utf8:
        return UTF8_SIG if scan.bom else UTF8
    offset = scan.first_non_utf8
    scores = plausibility(_sample(path, offset))
    # A tie goes to Windows-1252: Chinese text nearly always has a run of two hanzi or more
    # somewhere, which Windows-1252 finds implausible.
    best = GB18030 if scores[GB18030] > scores[CP1252] else CP1252
    if scores[best] < MIN_PLAUSIBLE:
        raise UndecodableFile(
            f"is not text in any accepted encoding: byte offset {offset} is not UTF-8, and the text around it "
            f"reads as neither GB18030 ({scores[GB18030]:.0%} plausible) nor Windows-1252 "
            f"({scores[CP1252]:.0%} plausible); encodings tried: {TRIED}",
            offset,
        )
    return best


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _first_nul(path: Path) -> int | None:
    offset = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            if (at := chunk.find(0)) >= 0:
                return offset + at
            offset += len(chunk)
    return None


def _nth_kept_byte(raw: bytes, n: int) -> int:
    """Index in ``raw`` of the n-th byte that is not NUL (error offsets refer to the file)."""
    kept = 0
    for i, b in enumerate(raw):
        if b:
            if kept == n:
                return i
            kept += 1
    return len(raw)


def transcode(path: Path, encoding: str, dest: Path) -> int:
    """Write ``path`` decoded from ``encoding`` to ``dest`` as UTF-8 without NUL bytes; returns
    the NUL bytes dropped. Chunks are cut after their last line break, which is always a
    character boundary in the accepted encodings."""
    errors = "c360_latin1" if encoding == CP1252 else "strict"
    dropped, offset, carry = 0, 0, b""
    with open(path, "rb") as src, open(dest, "w", encoding=UTF8, newline="") as out:
        if encoding == UTF8_SIG:
            offset = len(src.read(len(UTF8_BOM)))
            encoding = UTF8
        while True:
            raw = src.read(CHUNK)
            data = carry + raw
            if not data:
                break
            cut = data.rfind(b"\n") + 1 if raw else len(data)
            if cut == 0:  # one line longer than a chunk: keep reading it
                carry = data
                continue
            piece, carry = data[:cut], data[cut:]
            clean = piece.replace(b"\0", b"")
            dropped += len(piece) - len(clean)
            try:
                out.write(clean.decode(encoding, errors=errors))
            except UnicodeDecodeError as exc:
                at = offset + _nth_kept_byte(piece, exc.start)
                raise UndecodableFile(
                    f"byte offset {at} is not valid {_label(encoding)} ({exc.reason}); encodings tried: {TRIED}",
                    at,
                ) from None
            offset += len(piece)
            if not raw:
                break
    return dropped


def _label(encoding: str) -> str:
    return {UTF8: "UTF-8", UTF8_SIG: "UTF-8", GB18030: "GB18030", CP1252: "Windows-1252"}[encoding]


@dataclass(frozen=True)
class Readable:
    path: Path  # what DuckDB reads: the landing file itself or its UTF-8 copy
    encoding: str
    nul_bytes_removed: int = 0


@contextmanager
def readable_csv(path: Path, scan: ByteScan, scratch_root: Path) -> Iterator[Readable]:
    """The file as UTF-8 for DuckDB: itself when it already is (DuckDB skips a UTF-8 BOM), else
    a copy in a folder of its own under ``scratch_root``, removed on exit with the folder."""
    encoding = choose_encoding(path, scan)
    if encoding in (UTF8, UTF8_SIG) and not scan.nul_bytes:
        yield Readable(path, encoding)
        return
    scratch_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ingest-", dir=scratch_root))
    try:
        copy = folder / "utf8.csv"
        dropped = transcode(path, encoding, copy)
        yield Readable(copy, encoding, dropped)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        try:
            scratch_root.rmdir()  # only when no other load is using it
        except OSError:
            pass
