"""Python ``re`` patterns rewritten for DuckDB's RE2 so that both match exactly the same strings.

Great Expectations judges ``expect_column_values_to_match_regex`` with ``re.search`` (pandas'
``str.contains``); the gates judge it in DuckDB (``regexp_matches``, RE2, also a search). The two
dialects read some of the same text differently: Python's ``$`` also matches before a final
newline, its ``\\s``, ``\\d`` and ``\\w`` are Unicode classes (RE2's are ASCII), ``{,n}`` is a
quantifier only in Python. Each is rewritten into what RE2 reads as Python means it (the Unicode
classes spelt out from Python's own tables); a construct RE2 cannot express the same way
(lookarounds, backreferences, inline flags, ``\\b``) raises ``UnsupportedRegex`` instead of
meaning something else.
"""

from __future__ import annotations

import sys
from functools import cache


class UnsupportedRegex(ValueError):
    pass


def _ranges(predicate) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:  # surrogates never occur in UTF-8 text
            continue
        if predicate(chr(code)):
            if out and out[-1][1] == code - 1:
                out[-1] = (out[-1][0], code)
            else:
                out.append((code, code))
    return out


@cache
def _class_body(kind: str) -> str:
    """The members of Python's ``\\s``, ``\\d`` or ``\\w`` (str patterns), as RE2 class ranges."""
    predicate = {
        "s": str.isspace,
        "d": str.isdecimal,
        "w": lambda c: c.isalnum() or c == "_",
    }[kind]
    return "".join(
        f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in _ranges(predicate)
    )


_SIMPLE_ESCAPES = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v", "a": "\\x{7}"}
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _code(char: str) -> str:
    return f"\\x{{{ord(char):x}}}"


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text for the escape starting at ``pattern[i] == '\\\\'`` and the index after it."""
    if i + 1 >= len(pattern):
        raise UnsupportedRegex("the pattern ends with a lone backslash")
    c = pattern[i + 1]
    if c in "sdw":
        body = _class_body(c)
        return (body if in_class else f"[{body}]"), i + 2
    if c in "SDW":
        if in_class:
            raise UnsupportedRegex(f"\\{c} inside a character class")
        return f"[^{_class_body(c.lower())}]", i + 2
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 2
    if c in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[c]
        digits = pattern[i + 2 : i + 2 + width]
        if len(digits) != width or any(d not in _HEX_DIGITS for d in digits):
            raise UnsupportedRegex(f"malformed \\{c} escape")
        return f"\\x{{{int(digits, 16):x}}}", i + 2 + width
    if c == "N":
        import unicodedata

        end = pattern.find("}", i)
        if pattern[i + 2 : i + 3] != "{" or end < 0:
            raise UnsupportedRegex("malformed \\N escape")
        return _code(unicodedata.lookup(pattern[i + 3 : end])), end + 1
    if c == "0":
        j = i + 2
        while j < len(pattern) and j < i + 4 and pattern[j] in "01234567":
            j += 1
        return f"\\x{{{int(pattern[i + 1 : j], 8):x}}}", j
    if not in_class and c in "AZ":
        return ("\\A" if c == "A" else "\\z"), i + 2
    if c.isascii() and c.isalnum():
        # \b, \B, backreferences and escapes Python rejects: nothing RE2 reads the same way.
        raise UnsupportedRegex(f"\\{c}")
    return _code(c), i + 2


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The RE2 text for the character class opening at ``pattern[i] == '['``."""
    out, j = "[", i + 1
    if j < len(pattern) and pattern[j] == "^":
        out, j = "[^", j + 1
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            return out + "]", j + 1
        if c == "\\":
            text, j = _escape(pattern, j, in_class=True)
            out += text
        elif c == "[" and pattern[j + 1 : j + 2] in (":", ".", "="):
            raise UnsupportedRegex("POSIX bracket expression (RE2 reads [: as a named class)")
        elif c in "[]":
            out, j = out + _code(c), j + 1
        else:
            out, j = out + c, j + 1
        first = False
    raise UnsupportedRegex("unterminated character class")


def _dollar_ends_its_branch(pattern: str, i: int, depth: int) -> bool:
    """After the ``$`` at ``i`` come only closing parentheses, then the pattern's end or a
    top-level ``|``. RE2 has no lookahead, so Python's ``$`` (end, or before a final newline)
    becomes ``\\n?$``, which consumes that newline: exact only when nothing can follow it."""
    j = i + 1
    while j < len(pattern) and pattern[j] == ")":
        depth, j = depth - 1, j + 1
    return j == len(pattern) or (pattern[j] == "|" and depth == 0)


def _group_open(pattern: str, i: int) -> tuple[str, int]:
    if pattern[i + 1 : i + 2] != "?":
        return "(", i + 1
    head = pattern[i + 2 : i + 4]
    if head.startswith(":"):
        return "(?:", i + 3
    if head == "P<":
        return "(?P<", i + 4
    if head.startswith("#"):
        end = pattern.find(")", i)
        if end < 0:
            raise UnsupportedRegex("unterminated comment")
        return "(?:", end  # the comment's own ")" closes the empty group
    raise UnsupportedRegex(f"group construct (?{head[:1]}... (lookaround, flags or backreference)")


def _quantifier(pattern: str, i: int) -> tuple[str, int] | None:
    """``{m}``, ``{m,}``, ``{m,n}`` or Python's ``{,n}`` at ``i``; None when the brace is a literal."""
    end = pattern.find("}", i)
    if end < 0:
        return None
    inner = pattern[i + 1 : end]
    lo, comma, hi = inner.partition(",")
    if not (lo.isdigit() or (comma and not lo)) or (hi and not hi.isdigit()) or (not comma and not lo):
        return None
    if not lo.isascii() or not hi.isascii():
        return None
    return "{" + (lo or "0") + comma + hi + "}", end + 1


def to_re2(pattern: str) -> str:
    """RE2 text that ``regexp_matches`` finds in exactly the strings ``re.search(pattern, s)`` does."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, in_class=False)
        elif c == "[":
            text, i = _class(pattern, i)
        elif c == "(":
            text, i = _group_open(pattern, i)
            depth += 1
        elif c == ")":
            text, i, depth = ")", i + 1, depth - 1
        elif c == ".":
            text, i = "[^\\n]", i + 1
        elif c == "$":
            if not _dollar_ends_its_branch(pattern, i, depth):
                raise UnsupportedRegex("$ followed by more pattern in its branch")
            text, i = "(?:\\n?$)", i + 1
        elif c == "{":
            text, i = _quantifier(pattern, i) or ("\\{", i + 1)
            if text != "\\{" and pattern[i : i + 1] == "+":
                raise UnsupportedRegex("possessive quantifier")
        elif c in "*+?" and pattern[i + 1 : i + 2] == "+":
            raise UnsupportedRegex("possessive quantifier")
        elif c == "}":
            text, i = "\\}", i + 1
        else:
            text, i = c, i + 1
        out.append(text)
    return "".join(out)
