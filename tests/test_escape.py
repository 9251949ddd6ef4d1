"""`printable`: what every client does to text from the target before showing it."""

from __future__ import annotations

import unicodedata

import pytest

from inspector.escape import ESCAPED_CATEGORIES, printable

OSC_52 = "\x1b]52;c;cm0gLXJmIH4K\x07"
"""Sets the clipboard to `rm -rf ~` on terminals that allow OSC 52."""

ONE_LINE = [
    # clean text is returned as it is
    pytest.param("Task-12", "Task-12", id="ascii name"),
    pytest.param("", "", id="empty"),
    pytest.param("GET /items/{id}?q=1", "GET /items/{id}?q=1", id="request path"),
    pytest.param("café → 日本 🙂", "café → 日本 🙂", id="printable non-ascii"),
    pytest.param("a\u00a0b", "a\u00a0b", id="no-break space is text"),
    pytest.param("icon \ue0a0", "icon \ue0a0", id="private use (a font's icon) is text"),
    pytest.param(
        "[bold]x[/bold] [link=http://e]y[/]",
        "[bold]x[/bold] [link=http://e]y[/]",
        id="markup is text",
    ),
    pytest.param("C:\\app\\main.py", "C:\\app\\main.py", id="backslashes stay"),
    # C0 controls, DEL, and the sequences they start
    pytest.param("\x00", "\\x00", id="NUL"),
    pytest.param("a\x07b", "a\\x07b", id="BEL"),
    pytest.param("a\x08b", "a\\x08b", id="backspace"),
    pytest.param("a\x0bb\x0cc", "a\\x0bb\\x0cc", id="vertical tab, form feed"),
    pytest.param("a\x7fb", "a\\x7fb", id="DEL"),
    pytest.param("\x1b[31;1mRED\x1b[0m", "\\x1b[31;1mRED\\x1b[0m", id="CSI colour"),
    pytest.param("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H", id="CSI clear screen"),
    pytest.param(OSC_52, "\\x1b]52;c;cm0gLXJmIH4K\\x07", id="OSC 52 clipboard"),
    pytest.param("\x1b]0;pwned\x1b\\", "\\x1b]0;pwned\\x1b\\", id="OSC title, ST"),
    pytest.param("\x1bP+q\x1b\\", "\\x1bP+q\\x1b\\", id="DCS"),
    # C1 controls (U+0080-U+009F): CSI and OSC on their own on some terminals
    pytest.param("a\x9b2Jb", "a\\x9b2Jb", id="C1 CSI"),
    pytest.param("a\x9d0;t\x9cb", "a\\x9d0;t\\x9cb", id="C1 OSC and ST"),
    pytest.param("a\x85b", "a\\x85b", id="NEL"),
    # bidi controls
    pytest.param("txt.exe\u202egpj", "txt.exe\\u202egpj", id="RLO"),
    pytest.param(
        "\u202a\u202b\u202c\u202d\u202e", "\\u202a\\u202b\\u202c\\u202d\\u202e", id="embeddings"
    ),
    pytest.param("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069", id="isolates"),
    pytest.param("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c", id="marks"),
    # line and paragraph separators, invisible format characters
    pytest.param("a\u2028b\u2029c", "a\\u2028b\\u2029c", id="unicode separators"),
    pytest.param("ad\u200bmin", "ad\\u200bmin", id="zero-width space"),
    pytest.param("\ufeffname", "\\ufeffname", id="BOM"),
    pytest.param("x\U000e0041\U000e007f", "x\\U000e0041\\U000e007f", id="tag characters"),
    # lone surrogates (what a name decoded with surrogateescape holds)
    pytest.param("x\ud800y", "x\\ud800y", id="lone high surrogate"),
    pytest.param("x\udfffy", "x\\udfffy", id="lone low surrogate"),
    pytest.param("\udcff\udc80", "\\udcff\\udc80", id="surrogateescape bytes"),
    # line breaks and tabs: one line
    pytest.param("a\nb", "a ⏎ b", id="newline"),
    pytest.param("a\r\nb", "a ⏎ b", id="CRLF"),
    pytest.param("ok\rFAKE", "ok\\rFAKE", id="lone CR"),
    pytest.param("a\tb", "a b", id="tab"),
    # mixed
    pytest.param(
        "Task\x1b]52;c;eA==\x07\u202e[bold]\ud800\nend",
        "Task\\x1b]52;c;eA==\\x07\\u202e[bold]\\ud800 ⏎ end",
        id="everything at once",
    ),
]

MULTILINE = [
    pytest.param("line 1\nline 2", "line 1\nline 2", id="keeps newlines"),
    pytest.param("a\r\nb", "a\nb", id="CRLF becomes LF"),
    pytest.param("a\rb", "a\\rb", id="lone CR escaped"),
    pytest.param("errors:\n\tname", "errors:\n\tname", id="keeps tabs"),
    pytest.param("x\x1b[2J\ny\u202e", "x\\x1b[2J\ny\\u202e", id="still escapes"),
    pytest.param("\u2028", "\\u2028", id="unicode separators are not line breaks"),
]


@pytest.mark.parametrize(("text", "shown"), ONE_LINE)
def test_one_line(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # idempotent: escaping twice changes nothing
    assert "\n" not in shown
    shown.encode("utf-8")  # a lone surrogate would raise here, and in print()


@pytest.mark.parametrize(("text", "shown"), MULTILINE)
def test_multiline(text: str, shown: str) -> None:
    assert printable(text, multiline=True) == shown
    assert printable(shown, multiline=True) == shown


def test_clean_text_is_the_same_object() -> None:
    """The fast path returns its argument: no copy for the common case."""
    name = "worker.handle_request-1234"
    assert printable(name) is name


def test_no_code_point_of_an_escaped_category_comes_through() -> None:
    """Every Cc, Cf, Cs, Zl and Zp character of this Python's Unicode database, and only those,
    is escaped; everything else is shown as it is."""
    planes = [*range(0x30000), *range(0xE0000, 0xE1000)]
    for code in planes:
        char = chr(code)
        escaped = unicodedata.category(char) in ESCAPED_CATEGORIES
        shown = printable(char, multiline=True)
        if char in "\n\t":
            assert shown == char
        elif escaped:
            assert shown.startswith("\\") and shown.isascii() and shown.isprintable(), hex(code)
        else:
            assert shown == char, hex(code)
