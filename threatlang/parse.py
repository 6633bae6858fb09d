"""Text → syntax tree → IR. The only module that imports lark.

Syntax errors become `SpecError`s naming file:line:column and what the parser expected; every
semantic problem found while lowering is collected and reported at once (see `lower`).
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from importlib import resources
from pathlib import Path

import lark
from lark import Token, Transformer

from .errors import Diagnostic, SpecError
from .ir import Spec
from .ir.span import Span
from .syntax import Call, FileNode, ListV, Name, Num, SpecNode, Stmt, Str, TupleV

_TOKEN_NAMES = {
    "_NL": "a newline",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "SLASH": "'/'",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "UNIT": "a unit (samples, s, ms, min, h, px, %)",
    "INT": "a version number",
    "SPEC": "'spec'",
    "THREATLANG": "'threatlang'",
    "$END": "end of file",
}


class _BracketNewlines(lark.lark.PostLex):
    """Drops newlines inside (...) and [...], so long lists and calls may span lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


@functools.lru_cache(maxsize=8)
def _parser(file: str) -> lark.Lark:
    """An LALR parser that builds syntax nodes while parsing (no intermediate parse tree).

    The transformer is embedded so no lark Tree is built; it records `file` in every span,
    hence one cached parser per file name."""
    grammar = resources.files("threatlang").joinpath("grammar.lark").read_text()
    return lark.Lark(
        grammar,
        parser="lalr",
        propagate_positions=False,  # spans come from tokens (see _ToSyntax)
        maybe_placeholders=False,
        postlex=_BracketNewlines(),
        transformer=_ToSyntax(file),
        keep_all_tokens=True,
    )


def _span(file: str, meta_or_token) -> Span:
    m = meta_or_token
    return Span(file, m.line, m.column, m.end_line or m.line, m.end_column or m.column + 1)


#: the longest number literal read (a 64-bit integer has 19 digits, a double ~17 significant);
#: longer ones are refused before conversion, whose cost grows with the square of the length
MAX_NUMBER_CHARS = 100

#: the most items one [...] list or (...) tuple may hold: one bound per input dimension of a
#: 3x224x224 image (150,528) fits; longer lists are refused before parsing (see `_long_list`)
MAX_LIST_ITEMS = 200_000


def _number(text: str) -> int | float:
    if any(ch in text for ch in ".eE"):
        return float(text)
    return int(text)


def _literal(tok: Token, file: str) -> int | float:
    """A number token's value, or a positioned error: too long, or too large for a double."""
    text = str(tok)
    if len(text) > MAX_NUMBER_CHARS:
        raise _error(
            _span(file, tok),
            f"a number of {len(text)} characters is too long to read (at most {MAX_NUMBER_CHARS})",
        )
    value = _number(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(_span(file, tok), f"{text} is beyond the largest number (about 1.8e308)")
    return value


def _error(span: Span, message: str) -> SpecError:
    return SpecError([Diagnostic(span, message)])


def _first(items) -> Token | object:
    return items[0]


def _start_of(item) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line, item.column
    return item.span.line, item.span.column


def _end_of(item) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.end_line, item.end_column
    return item.span.end_line, item.span.end_column


_PUNCT = frozenset(
    {
        "LBRACE",
        "RBRACE",
        "LPAR",
        "RPAR",
        "LSQB",
        "RSQB",
        "COMMA",
        "SEMICOLON",
        "EQUAL",
        "SLASH",
        "SPEC",
        "THREATLANG",
    }
)


def _content(items) -> list:
    """Children without punctuation, keywords and newlines (kept only to bound spans)."""
    return [
        i
        for i in items
        if not (isinstance(i, Token) and (i.type in _PUNCT or i.type.startswith("_")))
    ]


class _ToSyntax(Transformer):
    """Builds `syntax` nodes while parsing; spans come from the first and last token of a rule
    (the parser keeps punctuation tokens so brackets bound the spans)."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, items) -> Span:
        (line, col), (end_line, end_col) = _start_of(items[0]), _end_of(items[-1])
        return Span(self.file, line, col, end_line, end_col)

    def start(self, items):
        version, version_span = None, None
        specs = []
        for item in items:
            if isinstance(item, tuple):
                version, version_span = item
            elif isinstance(item, SpecNode):
                specs.append(item)
        return FileNode(version, version_span, tuple(specs))

    def header(self, items):
        tok = _content(items)[0]
        return int(tok), _span(self.file, tok)

    def spec(self, items):
        name_tok, body = _content(items)
        name = name_tok[1:-1] if name_tok.type == "STRING" else str(name_tok)
        return SpecNode(name, body.stmts, _span(self.file, name_tok))

    def block(self, items):
        return _Block(tuple(i for i in items if isinstance(i, Stmt)), self._span(items))

    def stmt(self, items):
        key = items[0]
        value, block = None, None
        for item in items[1:]:
            if isinstance(item, _Block):
                block = item.stmts
            elif not isinstance(item, Token):
                value = item
        return Stmt(str(key), value, block, self._span(items), _span(self.file, key))

    def call(self, items):
        content = _content(items)
        name, rest = content[0], content[1:]
        args = tuple(a for a in rest if not isinstance(a, _Kwarg))
        kwargs = tuple((k.key, k.value) for k in rest if isinstance(k, _Kwarg))
        return Call(str(name), args, kwargs, self._span(items))

    def arg(self, items):
        return items[0]

    def kwarg(self, items):
        content = _content(items)
        return _Kwarg(str(content[0]), content[1])

    def list(self, items):
        return ListV(tuple(_content(items)), self._span(items))

    def tuple(self, items):
        return TupleV(tuple(_content(items)), self._span(items))

    def quantity(self, items):
        span = self._span(items)
        items = _content(items)
        unit = None
        if items and items[-1].type == "UNIT":
            unit = str(items[-1])
            items = items[:-1]
        text = " ".join(str(t) for t in items)
        if len(items) == 2:
            num, den = _literal(items[0], self.file), _literal(items[1], self.file)
            text = f"{items[0]}/{items[1]}"
            if den == 0:
                raise _error(span, f"{text} divides by zero")
            try:
                value: int | float = float(Fraction(str(num)) / Fraction(str(den)))
            except OverflowError:
                raise _error(span, f"{text} is beyond the largest number (about 1.8e308)") from None
        else:
            value = _literal(items[0], self.file)
        if unit:
            text += unit if unit in ("s", "ms", "min", "h", "%", "px") else f" {unit}"
        return Num(value, unit, text, span)

    def string(self, items):
        tok: Token = items[0]
        return Str(tok[1:-1].encode().decode("unicode_escape"), _span(self.file, tok))

    def name(self, items):
        tok: Token = items[0]
        return Name(str(tok), _span(self.file, tok))


class _Block:
    def __init__(self, stmts: tuple, span: Span):
        self.stmts, self.span = stmts, span


class _Kwarg:
    def __init__(self, key: str, value):
        self.key, self.value = key, value


def _syntax_error(err: lark.exceptions.UnexpectedInput, file: str, text: str) -> Diagnostic:
    line = getattr(err, "line", 1) or 1
    column = getattr(err, "column", 1) or 1
    if isinstance(err, lark.exceptions.UnexpectedToken):
        tok = err.token
        expected = sorted({_TOKEN_NAMES.get(e, e.lower()) for e in err.expected})
        if tok.type == "$END":
            got = "end of file"
        elif tok.type == "_NL":
            got = "end of line"
        elif tok.type in ("NAME", "NUMBER", "STRING", "UNIT", "INT"):
            got = f"{_TOKEN_NAMES[tok.type].split(' ', 1)[1].split(' (')[0]} {str(tok)!r}"
        else:
            got = repr(str(tok))
        end = (tok.end_column or column + 1) if tok.type not in ("_NL", "$END") else column + 1
        span = Span(file, line, column, line, end)
        return Diagnostic(span, f"syntax error: unexpected {got}", " or ".join(expected))
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        ch = text.splitlines()[line - 1][column - 1 : column] if text.splitlines() else ""
        expected = sorted({_TOKEN_NAMES.get(e, e.lower()) for e in (err.allowed or ())})
        return Diagnostic(
            Span(file, line, column, line, column + 1),
            f"syntax error: unexpected character {ch!r}",
            " or ".join(expected) or None,
        )
    return Diagnostic(Span(file, line, column), "syntax error: unexpected end of file")


#: what the list-length pre-scan must see: strings and comments (skipped whole, so their
#: brackets and commas do not count), brackets and commas
_LIST_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|(?:#|//)[^\n]*|[\[\]()]|,')


def _long_list(text: str, file: str) -> Diagnostic | None:
    """The first [...] or (...) with more than `MAX_LIST_ITEMS` items, found by a regex scan
    before parsing, so a million-item list costs a second instead of minutes of parsing.
    Skipped when the whole file has too few commas for any list to be that long."""
    if text.count(",") < MAX_LIST_ITEMS:
        return None
    stack: list[list[int]] = []  # [offset of the bracket, commas inside it at its own depth]
    for m in _LIST_TOKENS.finditer(text):
        tok = m.group()
        if tok in "[(":
            stack.append([m.start(), 0])
        elif tok in "])":
            if stack:
                stack.pop()
        elif tok == "," and stack:
            stack[-1][1] += 1
            if stack[-1][1] >= MAX_LIST_ITEMS:
                start = stack[-1][0]
                line = text.count("\n", 0, start) + 1
                column = start - text.rfind("\n", 0, start)
                return Diagnostic(
                    Span(file, line, column, line, column + 1),
                    f"this list holds more than {MAX_LIST_ITEMS} items, the most a list may hold",
                )
    return None


def parse_syntax(text: str, file: str = "<string>") -> FileNode:
    """Parse text into the uniform syntax tree, or raise `SpecError` with the syntax error."""
    too_long = _long_list(text, file)
    if too_long is not None:
        raise SpecError([too_long])
    try:
        return _parser(file).parse(text if text.endswith("\n") else text + "\n")
    except lark.exceptions.UnexpectedInput as err:
        raise SpecError([_syntax_error(err, file, text)]) from None


def parse_all(text: str, file: str = "<string>") -> tuple[Spec, ...]:
    """Parse and lower every spec in a text; raises `SpecError` with all problems at once."""
    from .lower import lower_file

    return lower_file(parse_syntax(text, file))


def parse(text: str, file: str = "<string>", name: str | None = None) -> Spec:
    """Parse a text holding one spec (or pick one by `name`) into a validated IR `Spec`."""
    return _pick(parse_all(text, file), name, file)


def load(path: str | Path, name: str | None = None) -> Spec:
    """Read a `.threat` file into a validated IR `Spec` (see `parse`)."""
    path = Path(path)
    return parse(read_source(path), str(path), name)


def load_all(path: str | Path) -> tuple[Spec, ...]:
    path = Path(path)
    return parse_all(read_source(path), str(path))


def read_source(path: Path) -> str:
    from .errors import UsageError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such spec file; check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; pass the .threat files inside it.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; a spec file must be plain text.") from None


def _pick(specs: tuple[Spec, ...], name: str | None, file: str) -> Spec:
    from .errors import UsageError

    if name is not None:
        for spec in specs:
            if spec.name == name:
                return spec
        names = ", ".join(s.name for s in specs)
        raise UsageError(f"{file} has no spec named {name!r}; it has: {names}.")
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs) or "none"
        raise UsageError(f"{file} holds {len(specs)} specs ({names}); choose one by name.")
    return specs[0]
