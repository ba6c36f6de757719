"""Which Firestore queries code runs, and which composite index each one needs.

``QueryRecorder`` wraps a client's RPCs, so it sees each query exactly as it
goes over the wire, together with the functions of the watched source files
that were on the stack. ``required_index`` derives the composite index a
query needs from its structured form, following Firestore's index rules:
equality-only queries are served by merging the automatic single-field
indexes, and a query on one field needs no composite index at all.
``query_building_functions`` finds, statically, every function of a source
file that builds a query, so a test can check that all of them were run.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ASC, DESC, ANY = "ASCENDING", "DESCENDING", "ANY"
EQUALITY_OPS = frozenset({"EQUAL", "IN", "IS_NULL", "IS_NAN"})
ARRAY_OPS = frozenset({"ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"})
RANGE_OPS = frozenset(
    {
        "LESS_THAN",
        "LESS_THAN_OR_EQUAL",
        "GREATER_THAN",
        "GREATER_THAN_OR_EQUAL",
        "NOT_EQUAL",
        "NOT_IN",
        "IS_NOT_NULL",
        "IS_NOT_NAN",
    }
)
# Methods of the client library that shape or run a query (not a document read).
QUERY_METHODS = frozenset(
    {
        "where",
        "order_by",
        "limit",
        "limit_to_last",
        "offset",
        "start_at",
        "start_after",
        "end_at",
        "end_before",
        "select",
        "count",
        "sum",
        "avg",
        "stream",
        "collection_group",
        "find_nearest",
        "list_documents",
    }
)


@dataclass(frozen=True)
class RequiredIndex:
    collection_group: str
    query_scope: str  # COLLECTION | COLLECTION_GROUP
    equality: frozenset[tuple[str, str]]  # (field, ASC | CONTAINS): any order in the index
    ordered: tuple[tuple[str, str], ...]  # (field, ASC | DESC | ANY), in this order, after them

    def as_json(self) -> dict[str, Any]:
        """The entry to add to firestore.indexes.json."""
        fields: list[dict[str, str]] = []
        for path, mode in sorted(self.equality):
            key = "arrayConfig" if mode == "CONTAINS" else "order"
            fields.append({"fieldPath": path, key: mode})
        fields += [{"fieldPath": p, "order": ASC if d == ANY else d} for p, d in self.ordered]
        return {
            "collectionGroup": self.collection_group,
            "queryScope": self.query_scope,
            "fields": fields,
        }


@dataclass(frozen=True)
class RecordedQuery:
    query: Mapping[str, Any]  # StructuredQuery as JSON (the REST API's shape)
    aggregations: tuple[Mapping[str, Any], ...]
    functions: frozenset[str]  # qualified names of watched functions on the stack
    site: str  # outermost watched frame: file:line function

    def describe(self) -> str:
        text = json.dumps({"query": self.query, "aggregations": self.aggregations}, sort_keys=True)
        return f"{self.site}: {text}"


def _filters(where: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """(field, op) of every filter of an AND tree."""
    if not where:
        return
    if "compositeFilter" in where:
        composite = where["compositeFilter"]
        if composite["op"] != "AND":
            # Each disjunct needs its own index; no adapter query uses OR yet.
            raise AssertionError(f"no index rule for {composite['op']} filters; add one here")
        for item in composite["filters"]:
            yield from _filters(item)
        return
    ((_, leaf),) = where.items()  # fieldFilter or unaryFilter
    yield leaf["field"]["fieldPath"], leaf["op"]


def required_index(
    query: Mapping[str, Any], aggregations: tuple[Mapping[str, Any], ...] = ()
) -> RequiredIndex | None:
    """The composite index ``query`` needs, or None when single-field indexes serve it."""
    (source,) = query["from"]
    equality: dict[str, str] = {}
    ranges: set[str] = set()
    for path, op in _filters(query.get("where")):
        if op in EQUALITY_OPS:
            equality[path] = ASC
        elif op in ARRAY_OPS:
            equality[path] = "CONTAINS"
        elif op in RANGE_OPS:
            ranges.add(path)
        else:
            raise AssertionError(f"no index rule for filter op {op}; add one here")
    ordered = [(o["field"]["fieldPath"], o.get("direction", ASC)) for o in query.get("orderBy", [])]
    # Range fields not ordered explicitly are ordered after the explicit ones, by name.
    ordered += [(p, ASC) for p in sorted(ranges - {p for p, _ in ordered})]
    # sum() and avg() read the field's value from the index entries they scan.
    for aggregation in aggregations:
        for kind in ("sum", "avg"):
            path = aggregation.get(kind, {}).get("field", {}).get("fieldPath")
            if path and path not in equality and path not in {p for p, _ in ordered}:
                ordered.append((path, ANY))
    while ordered and ordered[-1][0] == "__name__":  # every index ends with the document id
        ordered.pop()
    fields = set(equality) | {p for p, _ in ordered}
    if not ordered or len(fields) < 2:
        return None
    return RequiredIndex(
        collection_group=source["collectionId"],
        query_scope="COLLECTION_GROUP" if source.get("allDescendants") else "COLLECTION",
        equality=frozenset((p, m) for p, m in equality.items() if p not in dict(ordered)),
        ordered=tuple(ordered),
    )


def serves(index: Mapping[str, Any], need: RequiredIndex) -> bool:
    """Whether a firestore.indexes.json entry serves the required index."""
    if index["collectionGroup"] != need.collection_group:
        return False
    if index.get("queryScope", "COLLECTION") != need.query_scope:
        return False
    fields = [(f["fieldPath"], f.get("order") or f.get("arrayConfig")) for f in index["fields"]]
    while fields and fields[-1][0] == "__name__":
        fields.pop()
    if len(fields) != len(need.equality) + len(need.ordered):
        return False
    head, tail = fields[: len(need.equality)], fields[len(need.equality) :]
    # An equality field can be scanned in either direction.
    head_ok = {(p, ASC if m == DESC else m) for p, m in head} == set(need.equality)
    tail_ok = all(
        path == want_path and want in {ANY, mode}
        for (path, mode), (want_path, want) in zip(tail, need.ordered, strict=True)
    )
    return head_ok and tail_ok


def load_indexes(path: Path) -> list[dict[str, Any]]:
    indexes: list[dict[str, Any]] = json.loads(path.read_text())["indexes"]
    return indexes


def _to_json(message: Any) -> dict[str, Any]:
    """A proto-plus message in the REST API's JSON shape (enum names, unset fields left out)."""
    text = type(message).to_json(
        message, use_integers_for_enums=False, always_print_fields_with_no_presence=False
    )
    result: dict[str, Any] = json.loads(text)
    return result


class QueryRecorder:
    """Records every query a Firestore client sends while ``watch`` is active."""

    def __init__(self, sources: list[Path]) -> None:
        self.sources = {str(p.resolve()) for p in sources}
        self.queries: list[RecordedQuery] = []

    def _record(self, query: Mapping[str, Any], aggregations: tuple[Any, ...]) -> None:
        functions: set[str] = set()
        site = ""
        frame: FrameType | None = sys._getframe()
        while frame is not None:
            code = frame.f_code
            if code.co_filename in self.sources:
                functions.add(code.co_qualname)
                # Ends on the outermost watched frame: the method the caller used.
                site = f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_qualname}"
            frame = frame.f_back
        self.queries.append(RecordedQuery(query, aggregations, frozenset(functions), site))

    def _spy_run_query(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, request: Mapping[str, Any], **kwargs: Any) -> Any:
            self._record(_to_json(request["structured_query"]), ())
            return real(*args, request=request, **kwargs)

        return spy

    def _spy_aggregation(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, request: Mapping[str, Any], **kwargs: Any) -> Any:
            message = _to_json(request["structured_aggregation_query"])
            self._record(message["structuredQuery"], tuple(message.get("aggregations", [])))
            return real(*args, request=request, **kwargs)

        return spy

    @contextmanager
    def watch(self, client: Any) -> Iterator[QueryRecorder]:
        """Spy on ``client``'s query RPCs (a google.cloud.firestore.Client)."""
        api = client._firestore_api  # the GAPIC client every query goes through
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(api, "run_query", self._spy_run_query(api.run_query))
            patch.setattr(
                api, "run_aggregation_query", self._spy_aggregation(api.run_aggregation_query)
            )
            yield self


class _QueryCalls(ast.NodeVisitor):
    """Qualified names (as in ``co_qualname``) of the functions that call a query method."""

    def __init__(self) -> None:
        self.prefix: list[str] = []
        self.functions: list[str] = []  # the enclosing defs, innermost last
        self.found: dict[str, int] = {}  # qualname -> line of its first query call

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(".".join([*self.prefix, node.name]))
        self.prefix.append(f"{node.name}.<locals>")
        self.generic_visit(node)
        self.prefix.pop()
        self.functions.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.prefix.append(node.name)
        self.generic_visit(node)
        self.prefix.pop()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if self.functions and isinstance(func, ast.Attribute) and func.attr in QUERY_METHODS:
            self.found.setdefault(self.functions[-1], node.lineno)
        self.generic_visit(node)


def query_building_functions(path: Path) -> dict[str, int]:
    """Functions of ``path`` that call a query method (lambdas count as their enclosing def)."""
    visitor = _QueryCalls()
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


def firestore_modules(root: Path) -> list[Path]:
    """Application modules under ``root`` that use the Firestore client library."""
    candidates = [*(root / "services").rglob("*.py"), *(root / "api").rglob("*.py")]
    return sorted(p for p in candidates if "google.cloud" in p.read_text())


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` and ``A, B = ("a", "b")`` assignments."""
    found: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for name, value in zip(names, values, strict=False):
                text = value.value if isinstance(value, ast.Constant) else None
                if isinstance(name, ast.Name) and isinstance(text, str):
                    found[name.id] = text
    return found


def collections_used(paths: list[Path]) -> set[str]:
    """Collection names passed to ``collection(...)`` or the adapters' ``_doc(...)``."""
    trees = [ast.parse(p.read_text(), filename=str(p)) for p in paths]
    constants: dict[str, str] = {}
    for tree in trees:
        constants |= _string_constants(tree)
    used: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in {"collection", "_doc"}:
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    used.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in constants:
                    used.add(constants[arg.id])
    return used
