"""A small evaluator for the part of Cloud Logging's query language our metric filters use.

Supported: comparisons ``FIELD OP VALUE`` with ``=``, ``!=``, ``:`` (has a
substring), ``>``, ``>=``, ``<``, ``<=``; ``NOT``, ``AND``, ``OR`` and
parentheses. Anything else (implicit AND, value lists, functions, regular
expressions, global restrictions) is a ``QuerySyntaxError``, so a filter that
leaves the subset fails its test instead of being evaluated wrongly.

Semantics follow the Logging query language:

- ``NOT`` binds tightest, then ``OR``, then ``AND``: ``a OR b AND c`` is
  ``(a OR b) AND c``, unlike most languages.
- String comparisons ignore case; ``:`` matches a substring anywhere in the
  value (in any nested value of an object).
- ``severity`` compares by rank (``severity>=ERROR`` matches CRITICAL too).
- A comparison on a field the entry lacks is false (so ``NOT`` of it is true).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SEVERITY_RANK = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
OPERATORS = ("=", "!=", ":", ">", ">=", "<", "<=")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>>=|<=|!=|=|:|>|<)
      | (?P<paren>[()])
      | (?P<word>[^\s()"=:<>!]+)
    )""",
    re.VERBOSE,
)
KEYWORDS = ("AND", "OR", "NOT")

Entry = Mapping[str, Any]
Predicate = Callable[[Entry], bool]


class QuerySyntaxError(ValueError):
    """The filter is not in the supported subset of the query language."""


@dataclass(frozen=True)
class Token:
    kind: str  # "string", "op", "paren", "word" or "keyword"
    text: str


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    position, end = 0, len(query.rstrip())
    while position < end:
        match = _TOKEN.match(query, position)
        if match is None or match.lastgroup is None:
            raise QuerySyntaxError(f"cannot read the filter at {query[position:]!r}")
        kind, text = match.lastgroup, match.group(match.lastgroup)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif kind == "word" and text in KEYWORDS:
            kind = "keyword"
        tokens.append(Token(kind, text))
        position = match.end()
    return tokens


def field_value(entry: Entry, path: str) -> Any:
    """The value at a dotted path (``jsonPayload.user_id``), or None when it is absent."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _contains(value: Any, needle: str) -> bool:
    if isinstance(value, Mapping):
        return any(_contains(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, needle) for v in value)
    return needle.lower() in str(value).lower()


def _ordered(path: str, value: Any, literal: str) -> tuple[Any, Any]:
    """Both sides of an ordering: severity ranks, numbers, or case-folded strings."""
    if path == "severity":
        return SEVERITY_RANK.get(str(value).upper(), -1), SEVERITY_RANK.get(literal.upper(), -1)
    left, right = _number(value), _number(literal)
    if left is not None and right is not None:
        return left, right
    return str(value).lower(), literal.lower()


def compare(path: str, op: str, literal: str, value: Any) -> bool:
    if value is None:
        return False
    if op == ":":
        return _contains(value, literal)
    if op == "!=":
        return not compare(path, "=", literal, value)
    left, right = _ordered(path, value, literal)
    outcomes = {"=": left == right, ">": left > right, ">=": left >= right}
    outcomes |= {"<": left < right, "<=": left <= right}
    return bool(outcomes[op])


class _Parser:
    """Recursive descent: and_expr := or_expr (AND or_expr)*; or_expr := unary (OR unary)*."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            found = token.text if token else "the end of the filter"
            raise QuerySyntaxError(f"expected {text or kind}, found {found!r}")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "keyword" and token.text == text:
            self.at += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.and_expr()
        token = self.peek()
        if token is not None:  # Logging reads "a b" as "a AND b"; our filters spell it out
            raise QuerySyntaxError(f"expected AND, OR or the end, found {token.text!r}")
        return predicate

    def and_expr(self) -> Predicate:
        parts = [self.or_expr()]
        while self.accept("AND"):
            parts.append(self.or_expr())
        return parts[0] if len(parts) == 1 else lambda e: all(p(e) for p in parts)

    def or_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.accept("OR"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else lambda e: any(p(e) for p in parts)

    def unary(self) -> Predicate:
        if self.accept("NOT"):
            inner = self.unary()
            return lambda e: not inner(e)
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.at += 1
            inner = self.and_expr()
            self.take("paren", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        path = self.take("word").text
        op = self.take("op").text
        token = self.peek()
        if token is None or token.kind not in ("string", "word"):
            raise QuerySyntaxError(f"{path}{op} needs a value (value lists are not supported)")
        self.at += 1
        literal = token.text
        return lambda e: compare(path, op, literal, field_value(e, path))


def parse(query: str) -> Predicate:
    """The filter as a function from a LogEntry (as a dict) to whether it matches."""
    tokens = tokenize(query)
    if not tokens:
        raise QuerySyntaxError("an empty filter matches everything; write one")
    return _Parser(tokens).parse()


def matches(query: str, entry: Entry) -> bool:
    return parse(query)(entry)
