"""The sandbox org's SOQL engine: a tokenizer, a recursive-descent parser and an evaluator.

``run(soql, org)`` answers a query from ``org.rows(...)`` with records shaped as the REST API
returns them. It is pure: it reads the org and never changes it.

Supported subset (everything else is ``MALFORMED_QUERY``):

* ``SELECT`` a field list. Names are case-insensitive; output keys use the schema's spelling.
  Relationship paths of any depth follow lookups (``Profile.Name``, ``Assignee.Profile.Name``)
  and nest as objects with their own ``attributes`` (``None`` when the lookup is empty).
* ``SELECT COUNT() FROM ...``: no records, ``total_size`` is the count.
* ``SELECT COUNT(field) [alias] FROM ...``: one AggregateResult record (``expr0`` or the
  alias) counting the rows whose field is not null.
* Child-relationship subqueries in the field list, ``(SELECT Id FROM PermissionSetAssignments
  WHERE ... ORDER BY ... LIMIT n)``, answered as ``{"totalSize", "done", "records"}`` or ``None``
  when there are no child rows.
* ``FROM`` one object. Tooling objects only on the Tooling API; ``visible`` hides objects.
* ``WHERE`` with ``AND``/``OR``/``NOT`` and parentheses (mixing ``AND`` and ``OR`` needs
  parentheses, as in Salesforce); ``=``, ``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE``
  (``%`` and ``_``, case-insensitive), ``IN (...)``, ``NOT IN (...)``, semi-joins and anti-joins
  ``Id [NOT] IN (SELECT AssigneeId FROM PermissionSetAssignment WHERE ...)``, ``= null``,
  ``!= null``; relationship paths on the left.
* Literals: strings with escapes (``\\' \\" \\\\ \\n \\r \\t \\b \\f``, and ``\\% \\_`` for a
  literal wildcard in ``LIKE``), ``true``/``false``, numbers, ``null``, dates ``2026-11-23``,
  datetimes ``2026-11-23T10:00:00Z`` / ``+00:00`` / ``.000+0000``, and the date literals
  ``TODAY``, ``YESTERDAY`` and ``LAST_N_DAYS:n`` (ranges in UTC).
* ``ORDER BY`` several fields or paths, ``ASC``/``DESC``, ``NULLS FIRST``/``NULLS LAST`` (default:
  nulls first ascending, last descending); ``LIMIT``; ``OFFSET``.

Comparisons follow SOQL: ids compare 15/18-character-safe, strings case-insensitively, and a
null field satisfies ``!=`` and ``NOT IN``. Literal types are checked against the field type.

Not supported: aggregate functions other than ``COUNT()`` / ``COUNT(field)``, ``GROUP BY``,
``HAVING``, ``TYPEOF``, ``WITH``, ``FOR``, ``USING SCOPE``, bind variables, other date literals,
``INCLUDES``/``EXCLUDES``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from remediate.sandbox import schema
from remediate.sandbox.ids import same_id

if TYPE_CHECKING:
    from remediate.sandbox.state import Org

__all__ = ["Result", "SoqlError", "run"]


class SoqlError(Exception):
    """A query Salesforce would refuse; the REST layer answers it with HTTP 400."""

    def __init__(self, code: str, message: str, near: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.near = near  # the text the error points at, when it points at one
        self.at: int | None = None  # or the 0-based offset it points at
        self.column: int | None = None  # 1-based column of ``near`` in the query

    def echoed(self, soql: str) -> str:
        """The message as the REST API sends it when it can point at the column: the query,
        a caret under the column, "ERROR at Row:1:Column:N", then the message (recorded
        traffic, tests/conformance). Without a column, the bare message."""
        if self.column is None:
            return self.message
        return (f"\n{soql}\n{' ' * (self.column - 1)}^\nERROR at Row:1:Column:{self.column}"
                f"\n{self.message}")


def _locate(err: SoqlError, soql: str) -> SoqlError:
    """Fill ``err.column`` from ``err.at``, or from ``err.near``: its first whole-word
    occurrence in the query."""
    if err.at is not None and err.column is None and "\n" not in soql:
        err.column = err.at + 1
    if err.near and err.column is None and "\n" not in soql:
        found = re.search(rf"(?<![\w.]){re.escape(err.near)}(?![\w])", soql, re.IGNORECASE)
        if found:
            err.column = found.start() + 1
    return err


@dataclass(frozen=True)
class Result:
    records: list[dict[str, Any]]
    total_size: int
    is_count: bool
    entity: str | None = field(default=None, compare=False)  # the FROM object's name


# ---- error texts ---------------------------------------------------------------------------

MALFORMED = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_FILTER = "INVALID_QUERY_FILTER_OPERATOR"
INVALID_ID_FIELD = "invalid ID field: {value}"
INVALID_TYPE = "INVALID_TYPE"

EMPTY_QUERY = "SOQL statements cannot be empty or null"
UNKNOWN_OBJECT = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be "
    "sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)
UNKNOWN_FIELD = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, "
    "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
    "describe call for the appropriate names."
)
# Choice (not confirmed in the reference): Salesforce's usual wording for an unknown lookup or
# child relationship, with codes INVALID_FIELD (field path) and INVALID_TYPE (subquery FROM).
UNKNOWN_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in {where}. If you are attempting to use a custom "
    "relationship, be sure to append the '__r' after the custom relationship name. Please "
    "reference your WSDL or the describe call for the appropriate names."
)
# Choice: the exact text for filtering on a non-filterable field (e.g. LoginHistory.Status) is
# not documented. Reference: shared/reference/salesforce-api.md, open question 4.
NOT_FILTERABLE = "field '{name}' can not be filtered in a query call"
# Choice: Salesforce's known wording for a literal of the wrong type (errorCode INVALID_FIELD).
WRONG_LITERAL_QUOTED = (
    "value of filter criterion for field '{name}' must be of type {type} and should not be "
    "enclosed in quotes"
)
WRONG_LITERAL_UNQUOTED = (
    "value of filter criterion for field '{name}' must be of type {type} and should be enclosed "
    "in quotes"
)
WRONG_LITERAL = "value of filter criterion for field '{name}' must be of type {type}"
# Choice: Salesforce rejects a repeated field; we use its wording with MALFORMED_QUERY.
DUPLICATE_FIELD = "duplicate field selected: {name}"

_SF_TYPE_NAMES: dict[str, str] = {
    "id": "id", "reference": "id", "string": "string", "boolean": "boolean", "int": "integer",
    "datetime": "dateTime", "date": "date",
}
#: Literal kinds accepted for each field type (``null`` is always accepted).
_ACCEPTS: dict[str, frozenset[str]] = {
    "id": frozenset({"string"}),
    "reference": frozenset({"string"}),
    "string": frozenset({"string"}),
    "boolean": frozenset({"bool"}),
    "int": frozenset({"number"}),
    "datetime": frozenset({"datetime", "dateliteral"}),
    "date": frozenset({"date", "dateliteral"}),
}
_ID_TYPES = frozenset({"id", "reference"})


def _malformed(message: str) -> SoqlError:
    return SoqlError(MALFORMED, message)


def _now() -> datetime:
    """The clock date literals are measured against (tests replace it)."""
    return datetime.now(UTC)


# ---- tokenizer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, datetime, date, op, punct, eof
    text: str
    pos: int
    value: Any = None
    like: str | None = None  # for strings: the LIKE pattern as a regular expression


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:.])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'",
            "\\": "\\", "%": "%", "_": "_"}


def _read_string(text: str, start: int) -> tuple[Token, int]:
    """The string literal opening at ``start``; returns the token and the index after it."""
    chars: list[str] = []
    pattern: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            token = Token("string", text[start:i + 1], start, "".join(chars),
                          "".join(pattern))
            return token, i + 1
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            decoded = _ESCAPES.get(nxt.lower() if nxt in ("N", "R", "T", "B", "F") else nxt)
            if decoded is None:
                raise _malformed(f"invalid escape sequence '\\{nxt}' in string literal "
                                 f"{text[start:i + 2]}")
            chars.append(decoded)
            pattern.append(re.escape(decoded))
            i += 2
            continue
        chars.append(ch)
        pattern.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    raise _malformed(f"unterminated string literal starting at column {start + 1}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        if text[i] == "'":
            token, i = _read_string(text, i)
            tokens.append(token)
            continue
        m = _TOKEN_RE.match(text, i)
        if m is None:
            bad = re.match(r"\S+", text[i:])
            raise _malformed(f"unexpected token: '{bad.group(0) if bad else text[i]}'")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(0), i))
        i = m.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


# ---- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    """A field or relationship path as written, e.g. ``Assignee.Profile.Name``."""

    parts: tuple[str, ...]
    text: str
    pos: int = field(default=-1, compare=False)  # offset in the query, for error carets


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, bool, null, datetime, date, dateliteral
    value: Any
    like: str | None = None


@dataclass(frozen=True)
class Compare:
    ref: FieldRef
    op: str  # = != < <= > >= LIKE
    literal: Literal


@dataclass(frozen=True)
class InList:
    ref: FieldRef
    negated: bool
    values: tuple[Literal, ...] | Query


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    items: tuple[Cond, ...]


@dataclass(frozen=True)
class Not:
    item: Cond


Cond = Compare | InList | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    ref: FieldRef
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    sobject: str = ""
    items: list[FieldRef | Query] = field(default_factory=list)
    count: bool = False
    count_field: FieldRef | None = None  # COUNT(field): one AggregateResult row
    count_alias: str | None = None
    where: Cond | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


# ---- parser --------------------------------------------------------------------------------

_CLAUSE_WORDS = frozenset({"SELECT", "FROM", "WHERE", "ORDER", "LIMIT", "OFFSET", "AND", "OR",
                           "NOT", "IN", "LIKE", "GROUP", "HAVING", "WITH", "FOR", "USING"})


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    # -- token helpers --

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def unexpected(self, tok: Token | None = None) -> SoqlError:
        return _malformed(f"unexpected token: '{(tok or self.tok).text}'")

    def is_kw(self, *words: str, offset: int = 0) -> bool:
        tok = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return tok.kind == "ident" and tok.text.upper() in words

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.advance()
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise self.unexpected()

    def is_punct(self, ch: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == ch

    def expect_punct(self, ch: str) -> None:
        if not self.is_punct(ch):
            raise self.unexpected()
        self.advance()

    # -- grammar --

    def statement(self) -> Query:
        if not self.is_kw("SELECT") and self.tok.kind == "ident":
            # recorded traffic (tests/conformance): a statement that does not start with
            # SELECT names its first word unquoted
            raise _malformed(f"unexpected token: {self.tok.text}")
        query = self.query(nested=False)
        if self.tok.kind != "eof":
            raise self.unexpected()
        return query

    def query(self, nested: bool) -> Query:
        """SELECT items FROM name [WHERE] [ORDER BY] [LIMIT] [OFFSET]."""
        q = Query()
        self.expect_kw("SELECT")
        self.select_list(q, nested)
        self.expect_kw("FROM")
        if self.tok.kind != "ident" or "." in self.tok.text or self.is_kw(*_CLAUSE_WORDS):
            raise self.unexpected()
        q.sobject = self.advance().text
        if self.accept_kw("WHERE"):
            q.where = self.condition()
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            q.order.append(self.order_item())
            while self.is_punct(","):
                self.advance()
                q.order.append(self.order_item())
        if self.accept_kw("LIMIT"):
            q.limit = self.integer()
        if self.accept_kw("OFFSET"):
            q.offset = self.integer()
        return q

    def select_list(self, q: Query, nested: bool) -> None:
        if self.is_kw("COUNT") and self.tokens[self.i + 1].text == "(":
            self.advance()
            self.expect_punct("(")
            if self.is_punct(")"):
                self.advance()
                q.count = True
                return
            q.count_field = self.field_ref()
            self.expect_punct(")")
            if self.tok.kind == "ident" and not self.is_kw(*_CLAUSE_WORDS):
                q.count_alias = self.advance().text
            if self.is_punct(","):
                raise _malformed("the sandbox SOQL engine supports COUNT(field) alone in the "
                                 "select list")
            return
        while True:
            if self.is_punct("("):
                if nested:
                    raise self.unexpected()
                self.advance()
                q.items.append(self.query(nested=True))
                self.expect_punct(")")
            else:
                ref = self.field_ref()
                if self.is_punct("("):
                    raise _malformed(f"the sandbox SOQL engine does not support the function "
                                     f"'{ref.text}'")
                q.items.append(ref)
            if not self.is_punct(","):
                return
            self.advance()

    def field_ref(self) -> FieldRef:
        tok = self.tok
        if tok.kind != "ident" or self.is_kw(*_CLAUSE_WORDS):
            raise self.unexpected()
        self.advance()
        return FieldRef(tuple(tok.text.split(".")), tok.text, tok.pos)

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(tok.text)

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        descending = False
        if self.accept_kw("DESC"):
            descending = True
        else:
            self.accept_kw("ASC")
        nulls_first = not descending
        if self.accept_kw("NULLS"):
            if self.accept_kw("FIRST"):
                nulls_first = True
            elif self.accept_kw("LAST"):
                nulls_first = False
            else:
                raise self.unexpected()
        return OrderItem(ref, descending, nulls_first)

    def condition(self) -> Cond:
        """A chain of AND or of OR; mixing them needs parentheses (a SOQL rule)."""
        first = self.unary()
        if not self.is_kw("AND", "OR"):
            return first
        op = self.tok.text.upper()
        items = [first]
        while self.is_kw("AND", "OR"):
            if self.tok.text.upper() != op:
                raise self.unexpected()
            self.advance()
            items.append(self.unary())
        return BoolOp(op, tuple(items))

    def unary(self) -> Cond:
        if self.accept_kw("NOT"):
            return Not(self.unary())
        if self.is_punct("("):
            self.advance()
            cond = self.condition()
            self.expect_punct(")")
            return cond
        return self.comparison()

    def comparison(self) -> Cond:
        ref = self.field_ref()
        if self.is_kw("NOT") and self.is_kw("IN", offset=1):
            self.advance()
            self.advance()
            return InList(ref, True, self.in_values())
        if self.accept_kw("IN"):
            return InList(ref, False, self.in_values())
        if self.accept_kw("LIKE"):
            lit = self.literal()
            if lit.kind != "string":
                raise _malformed(f"LIKE needs a string literal for field '{ref.text}'")
            return Compare(ref, "LIKE", lit)
        if self.tok.kind != "op":
            raise self.unexpected()
        op = self.advance().text
        return Compare(ref, "!=" if op == "<>" else op, self.literal())

    def in_values(self) -> tuple[Literal, ...] | Query:
        self.expect_punct("(")
        if self.is_kw("SELECT"):
            sub = self.query(nested=True)
            self.expect_punct(")")
            return sub
        values = [self.literal()]
        while self.is_punct(","):
            self.advance()
            values.append(self.literal())
        self.expect_punct(")")
        return tuple(values)

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return Literal("string", tok.value, tok.like)
        if tok.kind == "number":
            self.advance()
            return Literal("number", float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind in ("datetime", "date"):
            try:
                value = datetime.fromisoformat(tok.text) if tok.kind == "datetime" \
                    else date.fromisoformat(tok.text)
            except ValueError:
                raise _malformed(f"invalid {tok.kind} literal: '{tok.text}'") from None
            self.advance()
            return Literal(tok.kind, value)
        if tok.kind == "ident":
            word = tok.text.upper()
            if word in ("TRUE", "FALSE"):
                self.advance()
                return Literal("bool", word == "TRUE")
            if word == "NULL":
                self.advance()
                return Literal("null", None)
            if word in ("TODAY", "YESTERDAY"):
                self.advance()
                return Literal("dateliteral", (word, 0))
            if word == "LAST_N_DAYS":
                self.advance()
                self.expect_punct(":")
                return Literal("dateliteral", (word, self.integer()))
        raise self.unexpected()


#: Syntax trees by query text: a fleet of orgs sends the same few queries thousands of times
#: (issue 17), and a tree is never changed after parsing (binding and evaluation only read it).
_parsed: dict[str, Query] = {}
_PARSED_MAX = 1024


def parse(soql: str) -> Query:
    """The syntax tree of a query; raises MALFORMED_QUERY for anything outside the subset."""
    tree = _parsed.get(soql)
    if tree is not None:
        return tree
    if not soql or not soql.strip():
        raise _malformed(EMPTY_QUERY)
    tree = _Parser(tokenize(soql)).statement()
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[soql] = tree
    return tree


# ---- binding names to the schema -----------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A resolved field path: lookups to follow, then a field on the last object."""

    refs: tuple[schema.Reference, ...]
    obj: schema.SObject  # the object holding ``field``
    field: str
    ftype: str
    text: str

    @property
    def key(self) -> tuple[str, ...]:
        return (*(r.relationship.lower() for r in self.refs), self.field.lower())


@dataclass(frozen=True)
class BoundCompare:
    path: Path
    op: str
    literal: Literal


@dataclass(frozen=True)
class BoundIn:
    path: Path
    negated: bool
    values: tuple[Literal, ...] | BoundQuery


@dataclass(frozen=True)
class BoundBool:
    op: str
    items: tuple[BoundCond, ...]


@dataclass(frozen=True)
class BoundNot:
    item: BoundCond


BoundCond = BoundCompare | BoundIn | BoundBool | BoundNot


@dataclass(frozen=True)
class BoundChild:
    relationship: schema.ChildRelationship
    query: BoundQuery


@dataclass(frozen=True)
class BoundOrder:
    path: Path
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class BoundQuery:
    obj: schema.SObject
    items: tuple[Path | BoundChild, ...]
    count: bool
    where: BoundCond | None
    order: tuple[BoundOrder, ...]
    limit: int | None
    offset: int | None
    count_field: Path | None = None
    count_alias: str | None = None


class _Binder:
    def __init__(self, tooling: bool, visible: Callable[[str], bool] | None) -> None:
        self.tooling = tooling
        self.visible = visible

    def known(self, obj: schema.SObject | None) -> bool:
        if obj is None:
            return False
        if obj.api == "tooling" and not self.tooling:
            return False
        return self.visible is None or self.visible(obj.name)

    def sobject(self, name: str) -> schema.SObject:
        obj = schema.lookup(name)
        if obj is None or not self.known(obj):
            raise SoqlError(INVALID_TYPE, UNKNOWN_OBJECT.format(name=name), near=name)
        return obj

    def query(self, q: Query, obj: schema.SObject) -> BoundQuery:
        items: list[Path | BoundChild] = []
        seen: set[tuple[str, ...]] = set()
        for item in q.items:
            bound: Path | BoundChild
            key: tuple[str, ...]
            if isinstance(item, Query):
                bound = self.child(item, obj)
                key = ("(child)", bound.relationship.name.lower())
                name = bound.relationship.name
            else:
                bound = self.path(item, obj)
                key = bound.key
                name = item.text
            if key in seen:
                raise _malformed(DUPLICATE_FIELD.format(name=name))
            seen.add(key)
            items.append(bound)
        where = self.cond(q.where, obj) if q.where is not None else None
        order = tuple(BoundOrder(self.path(o.ref, obj), o.descending, o.nulls_first)
                      for o in q.order)
        count_field = self.path(q.count_field, obj) if q.count_field is not None else None
        return BoundQuery(obj, tuple(items), q.count, where, order, q.limit, q.offset,
                          count_field, q.count_alias)

    def child(self, q: Query, parent: schema.SObject) -> BoundChild:
        rel = next((c for c in parent.children if c.name.lower() == q.sobject.lower()), None)
        child_obj = schema.lookup(rel.child) if rel else None
        if rel is None or child_obj is None or not self.known(child_obj):
            raise SoqlError(INVALID_TYPE, UNKNOWN_RELATIONSHIP.format(
                name=q.sobject, where="FROM part of query call"))
        if q.count:
            raise _malformed("COUNT() is not allowed in a child relationship subquery")
        return BoundChild(rel, self.query(q, child_obj))

    def path(self, ref: FieldRef, obj: schema.SObject) -> Path:
        refs: list[schema.Reference] = []
        current = obj
        for part in ref.parts[:-1]:
            lookup = current.reference(part)
            target = schema.lookup(lookup.target) if lookup else None
            if lookup is None or target is None or not self.known(target):
                raise SoqlError(INVALID_FIELD, UNKNOWN_RELATIONSHIP.format(
                    name=part, where="field path"))
            refs.append(lookup)
            current = target
        name = current.field_name(ref.parts[-1])
        if name is None:
            raise SoqlError(INVALID_FIELD,
                            UNKNOWN_FIELD.format(name=ref.parts[-1], entity=current.name),
                            near=ref.text)
        return Path(tuple(refs), current, name, current.fields[name], ref.text)

    def filter_path(self, ref: FieldRef, obj: schema.SObject) -> Path:
        path = self.path(ref, obj)
        if path.obj.filterable is not None and path.field not in path.obj.filterable:
            raise SoqlError(INVALID_FIELD, NOT_FILTERABLE.format(name=path.field))
        return path

    def cond(self, cond: Cond, obj: schema.SObject) -> BoundCond:
        if isinstance(cond, BoolOp):
            return BoundBool(cond.op, tuple(self.cond(c, obj) for c in cond.items))
        if isinstance(cond, Not):
            return BoundNot(self.cond(cond.item, obj))
        if isinstance(cond, Compare):
            path = self.filter_path(cond.ref, obj)
            if cond.op == "LIKE" and path.ftype not in ("string", *_ID_TYPES):
                raise _malformed(f"LIKE is not valid on field '{path.field}' of type "
                                 f"{_SF_TYPE_NAMES[path.ftype]}")
            self.check_literal(path, cond.literal)
            _check_id_literal(path, cond.ref, cond.literal)
            return BoundCompare(path, cond.op, cond.literal)
        path = self.filter_path(cond.ref, obj)
        if isinstance(cond.values, Query):
            sub_obj = self.sobject(cond.values.sobject)
            sub = self.query(cond.values, sub_obj)
            if sub.count or len(sub.items) != 1 or not isinstance(sub.items[0], Path) \
                    or sub.items[0].ftype not in _ID_TYPES or path.ftype not in _ID_TYPES:
                raise _malformed("a semi-join subquery must select exactly one id field and be "
                                 "compared with an id field")
            return BoundIn(path, cond.negated, sub)
        for lit in cond.values:
            self.check_literal(path, lit)
            _check_id_literal(path, cond.ref, lit)
        return BoundIn(path, cond.negated, cond.values)

    @staticmethod
    def check_literal(path: Path, lit: Literal) -> None:
        if lit.kind == "null" or lit.kind in _ACCEPTS[path.ftype]:
            return
        sf_type = _SF_TYPE_NAMES[path.ftype]
        if lit.kind == "string":
            template = WRONG_LITERAL_QUOTED
        elif "string" in _ACCEPTS[path.ftype]:
            template = WRONG_LITERAL_UNQUOTED
        else:
            template = WRONG_LITERAL
        raise SoqlError(INVALID_FIELD, template.format(name=path.field, type=sf_type))


def _check_id_literal(path: Path, ref: FieldRef, lit: Literal) -> None:
    """An id or reference field compared with a string that is no record id fails the whole
    query: INVALID_QUERY_FILTER_OPERATOR "invalid ID field: <value>", the caret under the
    field (a real answer pasted into forcedotcom/salesforcedx-apex issue #153; the code from
    restforce issue #557; tests/conformance). The empty string, and an 18-character id whose
    case-safe suffix is wrong, are let through (assumptions: not recorded)."""
    if path.ftype not in _ID_TYPES or lit.kind != "string":
        return
    value = str(lit.value)
    if value == "" or (len(value) in (15, 18) and value.isalnum()):
        return
    err = SoqlError(INVALID_FILTER, INVALID_ID_FIELD.format(value=value))
    err.at = ref.pos if ref.pos >= 0 else None
    raise err


# ---- evaluation ----------------------------------------------------------------------------


def _to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _to_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _date_range(literal: tuple[str, int]) -> tuple[datetime, datetime]:
    """[start, end) in UTC for a date literal.

    Choice: ranges are UTC days (the sandbox has no user time zone). ``LAST_N_DAYS:n`` includes
    today and the n days before it, so ``LAST_N_DAYS:1`` is yesterday and today.
    """
    word, n = literal
    today = datetime.combine(_now().date(), datetime.min.time(), tzinfo=UTC)
    tomorrow = today + timedelta(days=1)
    if word == "TODAY":
        return today, tomorrow
    if word == "YESTERDAY":
        return today - timedelta(days=1), today
    return today - timedelta(days=n), tomorrow


def _is_id_like(value: Any) -> bool:
    return isinstance(value, str) and len(value) in (15, 18) and value.isalnum()


def _id_key(value: Any) -> Any:
    """A value that is equal for the 15- and 18-character forms of one id."""
    return value[:15] if _is_id_like(value) else value


class _Evaluator:
    def __init__(self, org: Org, version: str, tooling: bool) -> None:
        self.org = org
        self.prefix = f"/services/data/v{version}/tooling" if tooling \
            else f"/services/data/v{version}"
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._index: dict[str, dict[str, dict[str, Any]]] = {}

    # -- rows --

    def rows(self, sobject: str) -> list[dict[str, Any]]:
        if sobject not in self._rows:
            rows = self.org.rows(sobject)
            self._rows[sobject] = rows
            self._index[sobject] = {str(r["Id"])[:15]: r for r in rows if r.get("Id")}
        return self._rows[sobject]

    def by_id(self, sobject: str, record_id: Any) -> dict[str, Any] | None:
        if not isinstance(record_id, str) or not record_id:
            return None
        self.rows(sobject)
        return self._index[sobject].get(record_id[:15])

    def follow(self, row: dict[str, Any], ref: schema.Reference) -> dict[str, Any] | None:
        return self.by_id(ref.target, row.get(ref.field))

    def value(self, row: dict[str, Any], path: Path) -> Any:
        current = row
        for ref in path.refs:
            target = self.follow(current, ref)
            if target is None:
                return None
            current = target
        return current.get(path.field)

    # -- queries --

    def select(self, q: BoundQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filter, order, offset and limit ``rows`` (of ``q.obj``)."""
        if q.where is not None:
            where = q.where
            rows = [r for r in rows if self.test(where, r)]
        for item in reversed(q.order):
            rows = self.sort(rows, item)
        if q.offset:
            rows = rows[q.offset:]
        if q.limit is not None:
            rows = rows[:q.limit]
        return rows

    def sort(self, rows: list[dict[str, Any]], item: BoundOrder) -> list[dict[str, Any]]:
        keyed = [(self.sort_key(self.value(r, item.path), item.path.ftype), r) for r in rows]
        present = [kr for kr in keyed if kr[0] is not None]
        nulls = [kr[1] for kr in keyed if kr[0] is None]
        present.sort(key=lambda kr: kr[0], reverse=item.descending)
        ordered = [kr[1] for kr in present]
        return nulls + ordered if item.nulls_first else ordered + nulls

    @staticmethod
    def sort_key(value: Any, ftype: str) -> Any:
        if value is None:
            return None
        if ftype == "datetime":
            return _to_datetime(value)
        if ftype == "date":
            return _to_date(value)
        if ftype == "string":
            return str(value).lower()
        return value

    def attributes(self, obj: schema.SObject, row: dict[str, Any]) -> dict[str, Any]:
        return {"type": obj.name, "url": f"{self.prefix}/sobjects/{obj.name}/{row.get('Id')}"}

    def shape(self, q: BoundQuery, row: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"attributes": self.attributes(q.obj, row)}
        for item in q.items:
            if isinstance(item, BoundChild):
                record[item.relationship.name] = self.children(item, row)
            else:
                self.put(record, row, item)
        return record

    def put(self, record: dict[str, Any], row: dict[str, Any], path: Path) -> None:
        """Write one selected path into ``record``, nesting relationship objects."""
        current_record, current_row = record, row
        for ref in path.refs:
            target = self.follow(current_row, ref)
            if target is None:
                current_record.setdefault(ref.relationship, None)
                return
            nested = current_record.get(ref.relationship)
            if nested is None:
                target_obj = schema.OBJECTS[ref.target]
                nested = {"attributes": self.attributes(target_obj, target)}
                current_record[ref.relationship] = nested
            current_record, current_row = nested, target
        value = current_row.get(path.field)
        # The rows may be shared by later queries (Org.query_rows): answer with a copy of a
        # nested value (a PackageInstallRequest's Errors), never the row's own.
        current_record[path.field] = value if value is None or isinstance(
            value, str | int | float) else copy.deepcopy(value)

    def children(self, child: BoundChild, parent: dict[str, Any]) -> dict[str, Any] | None:
        rel = child.relationship
        parent_id = parent.get("Id")
        rows = [r for r in self.rows(rel.child) if parent_id and same_id(r.get(rel.field),
                                                                         parent_id)]
        rows = self.select(child.query, rows)
        if not rows:
            return None
        return {"totalSize": len(rows), "done": True,
                "records": [self.shape(child.query, r) for r in rows]}

    # -- conditions --

    def test(self, cond: BoundCond, row: dict[str, Any]) -> bool:
        if isinstance(cond, BoundBool):
            if cond.op == "AND":
                return all(self.test(c, row) for c in cond.items)
            return any(self.test(c, row) for c in cond.items)
        if isinstance(cond, BoundNot):
            return not self.test(cond.item, row)
        value = self.value(row, cond.path)
        if isinstance(cond, BoundCompare):
            return _compare(cond.path.ftype, value, cond.op, cond.literal)
        if isinstance(cond.values, BoundQuery):
            found = value is not None and _id_key(value) in self.semi_join(cond.values)
        else:
            found = any(_compare(cond.path.ftype, value, "=", lit) for lit in cond.values)
        return not found if cond.negated else found

    def semi_join(self, sub: BoundQuery) -> set[Any]:
        path = sub.items[0]
        assert isinstance(path, Path)
        rows = self.select(sub, self.rows(sub.obj.name))
        return {_id_key(v) for v in (self.value(r, path) for r in rows) if v is not None}


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _compare(ftype: str, value: Any, op: str, lit: Literal) -> bool:
    """SOQL semantics of ``<field value> <op> <literal>``."""
    if lit.kind == "null":
        if op == "=":
            return value is None
        return value is not None if op == "!=" else False
    if value is None:
        return op == "!="  # a null field differs from every value
    if op == "LIKE":
        return re.fullmatch(lit.like or "", str(value), re.IGNORECASE | re.DOTALL) is not None
    if lit.kind == "dateliteral":
        start, end = _date_range(lit.value)
        if ftype == "date":
            day = _to_date(value)
            assert day is not None
            return _in_range(op, day, start.date(), end.date())
        moment = _to_datetime(value)
        assert moment is not None
        return _in_range(op, moment, start, end)
    if ftype in _ID_TYPES:
        if op in ("=", "!="):
            equal = same_id(value, lit.value) if _is_id_like(value) and _is_id_like(lit.value) \
                else value == lit.value
            return equal if op == "=" else not equal
        return _ordered(op, str(value), str(lit.value))
    if ftype == "string":
        return _ordered(op, str(value).lower(), str(lit.value).lower())
    if ftype == "datetime":
        return _ordered(op, _to_datetime(value), _to_datetime(lit.value))
    if ftype == "date":
        return _ordered(op, _to_date(value), _to_date(lit.value))
    return _ordered(op, value, lit.value)


def _in_range(op: str, value: Any, start: Any, end: Any) -> bool:
    """Compare a value with a date-literal range [start, end)."""
    if op == "=":
        return bool(start <= value < end)
    if op == "!=":
        return not start <= value < end
    if op == "<":
        return bool(value < start)
    if op == "<=":
        return bool(value < end)
    if op == ">":
        return bool(value >= end)
    return bool(value >= start)


# ---- entry point ---------------------------------------------------------------------------

#: Bound queries by (text, tooling, whether a visibility rule applies): each with the
#: visibility questions its binding asked and their answers, in order. Binding is a function
#: of the tree, ``tooling`` and those answers only, so when the same questions get the same
#: answers for another session (or org) it binds to the same tree (issue 17: a fleet sends
#: the same queries for every org). The answers themselves are asked again every time.
_bound: dict[tuple[str, bool, bool], list[tuple[tuple[tuple[str, bool], ...], BoundQuery]]] = {}
_BOUND_MAX = 1024
_BOUND_VARIANTS = 8


def _bind(soql: str, query: Query, tooling: bool,
          visible: Callable[[str], bool] | None) -> BoundQuery:
    key = (soql, tooling, visible is None)
    variants = _bound.get(key, [])
    for asked, known in variants:
        if visible is None or all(bool(visible(name)) == answer for name, answer in asked):
            return known
    questions: list[tuple[str, bool]] = []

    def recording(name: str) -> bool:
        answer = visible is None or bool(visible(name))
        questions.append((name, answer))
        return answer

    binder = _Binder(tooling, None if visible is None else recording)
    bound = binder.query(query, binder.sobject(query.sobject))
    if len(_bound) >= _BOUND_MAX:
        _bound.clear()
    if len(variants) >= _BOUND_VARIANTS:
        variants = []
    _bound[key] = [*variants, (tuple(questions), bound)]
    return bound



def run(soql: str, org: Org, *, version: str = "59.0", tooling: bool = False,
        visible: Callable[[str], bool] | None = None) -> Result:
    """Answer ``soql`` from ``org``; raises SoqlError for a query Salesforce would refuse."""
    query = parse(soql)
    try:
        bound = _bind(soql, query, tooling, visible)
    except SoqlError as exc:
        raise _locate(exc, soql) from None
    evaluator = _Evaluator(org, version, tooling)
    rows = evaluator.select(bound, evaluator.rows(bound.obj.name))
    if bound.count:
        return Result([], len(rows), True, bound.obj.name)
    if bound.count_field is not None:
        # Recorded traffic: COUNT(field) answers one AggregateResult row, attributes without a
        # url, the count under its alias or expr0; totalSize is 1.
        counted = sum(1 for r in rows if evaluator.value(r, bound.count_field) is not None)
        row = {"attributes": {"type": "AggregateResult"}, bound.count_alias or "expr0": counted}
        return Result([row], 1, False, bound.obj.name)
    records = [evaluator.shape(bound, r) for r in rows]
    return Result(records, len(records), False, bound.obj.name)


# ---- column metadata (GET query?q=...&columns=true) ---------------------------------------

#: Apex type names per field type, as the column metadata reports them.
_APEX_TYPES: dict[str, str] = {
    "id": "Id", "reference": "Id", "string": "String", "boolean": "Boolean", "int": "Integer",
    "datetime": "Datetime", "date": "Date",
}


def _column(name: str, display: str, ftype: str | None, obj: schema.SObject | None,
            joins: list[dict[str, Any]], aggregate: bool = False) -> dict[str, Any]:
    """One column, keys in the order the real answer has them (alphabetical)."""
    writable = obj is not None and ftype is not None and name not in (
        "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp")
    return {
        "aggregate": aggregate,
        "apexType": _APEX_TYPES.get(ftype or "") if ftype else None,
        "booleanType": ftype == "boolean",
        "columnName": name,
        "custom": name.endswith("__c"),
        "displayName": display,
        "foreignKeyName": None,
        "insertable": bool(writable and obj is not None and obj.createable),
        "joinColumns": joins,
        "numberType": ftype == "int",
        "textType": ftype == "string",
        "updatable": bool(writable and obj is not None and name in obj.updateable_fields),
    }


def _path_column(path: Path, depth: int = 0) -> dict[str, Any]:
    if depth == len(path.refs):
        return _column(path.field, path.text, path.ftype, path.obj, [])
    ref = path.refs[depth]
    display = ".".join(path.text.split(".")[:depth + 1])
    return _column(ref.relationship, display, None, None, [_path_column(path, depth + 1)])


def _query_columns(bound: BoundQuery) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in bound.items:
        if isinstance(item, BoundChild):
            out.append(_column(item.relationship.name, item.relationship.name, None, None,
                               _query_columns(item.query), aggregate=True))
        else:
            out.append(_path_column(item))
    return out


def columns(soql: str, *, tooling: bool = False,
            visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """What ``query?columns=true`` answers: the select list described, no rows read.

    Undocumented by Salesforce; the sf CLI's ``data query`` reads ``columnMetadata`` (each
    column's ``columnName``, ``aggregate`` and nested ``joinColumns``). Raises SoqlError like
    ``run`` for a query Salesforce would refuse."""
    query = parse(soql)
    binder = _Binder(tooling, visible)
    bound = binder.query(query, binder.sobject(query.sobject))
    from remediate.sandbox.ids import KEY_PREFIXES

    cols = [] if bound.count else _query_columns(bound)
    return {
        "columnMetadata": cols,
        "entityName": bound.obj.name,
        "groupBy": False,
        "idSelected": any(isinstance(i, Path) and not i.refs and i.field == "Id"
                          for i in bound.items),
        "keyPrefix": KEY_PREFIXES.get(bound.obj.name),
    }
