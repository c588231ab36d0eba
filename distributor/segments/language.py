"""The segment language: a reader's facts combined with ``and``, ``or``, ``not``, read into a
tree by a pure parser. Nothing a user types ever reaches the database as SQL: the tree is
compiled to SQLAlchemy expressions (:mod:`.compile`), its values bound as parameters.

Grammar (keywords in any case; ``never`` is another way to write ``not``)::

    expression := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := ("not" | "never") factor | "(" expression ")" | condition
    condition  := FIELD ("=" | "!=") VALUE | FIELD "in" "(" VALUE ("," VALUE)* ")"
                | "joined" ("<" | "<=" | ">" | ">=") DATE | "joined" "within" N "days"
                | ("opened" | "clicked") "any" "of" "last" N "sends"
                | ("opened" | "clicked") "since" DATE
                | "bounced" "softly" ["since" DATE]
    FIELD      := "list" | "tag" | "channel" | "format" | "attr." KEY

A VALUE is a bare word (``工会办``, ``members``) or a quoted text (``"青年 突击队"``, with
``\\"`` and ``\\\\`` inside); a DATE is ``2026-10-01`` or ``2026-10-01T09:00`` (read in the
site's zone unless it carries an offset). A mistake is refused with its position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from distributor.errors import DistributorError, Notice
from distributor.vocabulary import EMAIL_VARIANTS

EXPRESSION_MAX = 2000  # characters of an expression; a segment is a sentence, not a program
VALUES_MAX = 100  # values in one `in (…)`
DEPTH_MAX = 32  # nested parentheses and `not`s
COUNT_MAX = 1000  # the N of "last N sends", "within N days"
CHANNELS = ("email", "wechat", "both")
FORMATS = tuple(variant.value for variant in EMAIL_VARIANTS)
KEY_PATTERN = r"[A-Za-z0-9_\-\u3400-\u4dbf\u4e00-\u9fff]+"
_KEY = re.compile(KEY_PATTERN)
_BARE = re.compile(r"[^\s()=!<>,\"']+")
_SYMBOLS = ("!=", "<=", ">=", "=", "<", ">", "(", ")", ",")
Comparison = Literal["<", "<=", ">", ">="]
Kind = Literal["open", "click"]


class SegmentSyntaxError(DistributorError):
    """An expression that does not read; the message points at the place."""

    def __init__(
        self, source: str, position: int, problem: str, *, code: str, **params: object
    ) -> None:
        """``code`` and ``params`` are the problem's; a page words it after the position."""
        self.position = position  # 0-based, in characters
        super().__init__(
            f"at position {position + 1}: {problem}\n  {source}\n  {' ' * position}^",
            code="segment.syntax",
            position=position + 1,
            problem=Notice(problem, code=code, **params),
        )


@dataclass(frozen=True)
class Facet:
    """The reader's list, tag, channel, format or attribute (``attr.KEY``) is one of ``values``."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Joined:
    """The reader was added to the store before or after a moment."""

    comparison: Comparison
    moment: datetime


@dataclass(frozen=True)
class JoinedWithin:
    days: int


@dataclass(frozen=True)
class Engaged:
    """Opened (or clicked, a reader's click, not a scanner's) any of the last ``last_sends``
    tracked sends, or anything since ``since``."""

    kind: Kind
    last_sends: int | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class SoftBounced:
    """A message to the reader failed for a full or disabled mailbox (since ``since``)."""

    since: datetime | None = None


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Node, ...]


Node = Facet | Joined | JoinedWithin | Engaged | SoftBounced | Not | All | Any_


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "text", "symbol", "end"]
    value: str
    position: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char.isspace():
            i += 1
        elif char in "\"'":
            text, i = _quoted(source, i)
            found.append(_Token("text", text, i - len(text)))
        elif symbol := next((s for s in _SYMBOLS if source.startswith(s, i)), None):
            found.append(_Token("symbol", symbol, i))
            i += len(symbol)
        elif match := _BARE.match(source, i):
            found.append(_Token("word", match.group(), i))
            i = match.end()
        else:
            raise SegmentSyntaxError(
                source, i, f"{char!r} cannot stand here", code="segment.bad_char", char=char
            )
    found.append(_Token("end", "", len(source)))
    return found


def _quoted(source: str, start: int) -> tuple[str, int]:
    quote, i, text = source[start], start + 1, []
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source) and source[i + 1] in (quote, "\\"):
            text.append(source[i + 1])
            i += 2
        elif char == quote:
            return "".join(text), i + 1
        else:
            text.append(char)
            i += 1
    raise SegmentSyntaxError(
        source, start, f"this {quote} is never closed", code="segment.open_quote", quote=quote
    )


def parse(source: str, zone: ZoneInfo) -> Node:
    """The tree of ``source``; :class:`SegmentSyntaxError` says where it does not read."""
    if len(source) > EXPRESSION_MAX:
        raise SegmentSyntaxError(
            source[:40] + "…",
            0,
            f"longer than {EXPRESSION_MAX} characters",
            code="segment.long",
            most=EXPRESSION_MAX,
        )
    if "\x00" in source:
        raise SegmentSyntaxError(
            "", 0, "a NUL character cannot be in an expression", code="segment.nul"
        )
    return _Parser(source, zone).expression_to_end()


class _Parser:
    def __init__(self, source: str, zone: ZoneInfo) -> None:
        self.source = source
        self.zone = zone
        self.tokens = _tokens(source)
        self.at = 0
        self.depth = 0

    # Reading tokens

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def fail(
        self, problem: str, token: _Token | None = None, *, code: str, **params: object
    ) -> SegmentSyntaxError:
        position = (token or self.token).position
        return SegmentSyntaxError(self.source, position, problem, code=code, **params)

    def shown(self, token: _Token) -> str:
        if token.kind == "end":
            return Notice("the end", code="segment.the_end")
        return repr(token.value)

    def keyword(self, *words: str) -> str | None:
        """The next token, taken, if it is one of ``words`` (a bare word, any case)."""
        if self.token.kind == "word" and self.token.value.lower() in words:
            word = self.token.value.lower()
            self.at += 1
            return word
        return None

    def expect(self, word: str, after: str) -> None:
        if self.keyword(word) is None:
            found = self.shown(self.token)
            raise self.fail(
                f"expected {word!r} {after}, found {found}",
                code="segment.expected_word",
                word=word,
                found=found,
            )

    def symbol(self, *symbols: str) -> str | None:
        if self.token.kind == "symbol" and self.token.value in symbols:
            self.at += 1
            return self.token_before.value
        return None

    @property
    def token_before(self) -> _Token:
        return self.tokens[self.at - 1]

    # The grammar

    def expression_to_end(self) -> Node:
        if self.token.kind == "end":
            raise self.fail(
                "the expression is empty: say who, e.g. list = members", code="segment.empty"
            )
        node = self.expression()
        rest = self.token  # (read again: the expression moved on)
        if rest.kind != "end":
            found = self.shown(rest)
            raise self.fail(
                f"expected 'and', 'or' or the end, found {found}",
                code="segment.expected_end",
                found=found,
            )
        return node

    def expression(self) -> Node:
        items = [self.term()]
        while self.keyword("or"):
            items.append(self.term())
        return items[0] if len(items) == 1 else Any_(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.keyword("and"):
            items.append(self.factor())
        return items[0] if len(items) == 1 else All(tuple(items))

    def factor(self) -> Node:
        self.depth += 1
        if self.depth > DEPTH_MAX:
            raise self.fail(
                f"nested deeper than {DEPTH_MAX} levels", code="segment.deep", most=DEPTH_MAX
            )
        try:
            if self.keyword("not", "never"):
                return Not(self.factor())
            if self.symbol("("):
                opening = self.token_before
                node = self.expression()
                if not self.symbol(")"):
                    found = self.shown(self.token)
                    raise self.fail(
                        f"expected ')' to close the '(' at position {opening.position + 1}, "
                        f"found {found}",
                        code="segment.unclosed",
                        opened=opening.position + 1,
                        found=found,
                    )
                return node
            return self.condition()
        finally:
            self.depth -= 1

    def condition(self) -> Node:
        token = self.token
        if token.kind != "word":
            found = self.shown(token)
            raise self.fail(
                f"expected a condition (list, tag, channel, format, attr.KEY, joined, opened, "
                f"clicked, bounced), found {found}",
                code="segment.expected_condition",
                found=found,
            )
        word = token.value.lower()
        self.at += 1
        if word in ("list", "tag", "channel", "format"):
            return self.facet(word, token)
        if word.startswith("attr."):
            key = token.value[len("attr.") :]
            if not _KEY.fullmatch(key):
                raise self.fail(
                    "an attribute is attr. followed by its name (letters, digits, _ and -)",
                    token,
                    code="segment.attribute",
                )
            return self.facet("attr." + key, token)
        if word == "joined":
            return self.joined()
        if word in ("opened", "clicked"):
            return self.engaged("open" if word == "opened" else "click")
        if word == "bounced":
            self.expect("softly", "after 'bounced' (hard bounces are suppressed already)")
            return SoftBounced(self.date() if self.keyword("since") else None)
        raise self.fail(
            f"{token.value!r} is not a condition: use list, tag, channel, format, attr.KEY, "
            "joined, opened, clicked or bounced",
            token,
            code="segment.not_condition",
            word=token.value,
        )

    def facet(self, field: str, token: _Token) -> Node:
        if self.keyword("in"):
            values = self.value_list()
            negated = False
        elif operator := self.symbol("=", "!="):
            values = (self.value(),)
            negated = operator == "!="
        else:
            raise self.fail(
                f"expected =, != or in after {token.value!r}",
                code="segment.expected_operator",
                word=token.value,
            )
        allowed = {"channel": CHANNELS, "format": FORMATS}.get(field)
        for value in values:
            if allowed is not None and value not in allowed:
                raise self.fail(
                    f"{field} is one of {', '.join(allowed)}, not {value!r}",
                    self.token_before,
                    code="segment.choice",
                    field=field,
                    allowed=", ".join(allowed),
                    value=value,
                )
        node: Node = Facet(field, values)
        return Not(node) if negated else node

    def value(self) -> str:
        token = self.token
        if token.kind not in ("word", "text"):
            found = self.shown(token)
            raise self.fail(
                f"expected a value, found {found}", code="segment.expected_value", found=found
            )
        self.at += 1
        return token.value

    def value_list(self) -> tuple[str, ...]:
        if not self.symbol("("):
            raise self.fail(
                "expected '(' and a list of values after 'in'", code="segment.expected_list"
            )
        values = [self.value()]
        while self.symbol(","):
            values.append(self.value())
        if not self.symbol(")"):
            found = self.shown(self.token)
            raise self.fail(
                f"expected ',' or ')' in the list, found {found}",
                code="segment.expected_comma",
                found=found,
            )
        if len(values) > VALUES_MAX:
            raise self.fail(
                f"more than {VALUES_MAX} values in one list",
                self.token_before,
                code="segment.many_values",
                most=VALUES_MAX,
            )
        return tuple(values)

    def joined(self) -> Node:
        if self.keyword("within"):
            days = self.count()
            self.expect("days", "after the number")
            return JoinedWithin(days)
        comparison = self.symbol("<", "<=", ">", ">=")
        if comparison is None:
            raise self.fail(
                "expected <, <=, >, >= and a date, or 'within N days', after 'joined'",
                code="segment.joined",
            )
        return Joined(comparison, self.date())  # type: ignore[arg-type]

    def engaged(self, kind: Kind) -> Node:
        if self.keyword("since"):
            return Engaged(kind, since=self.date())
        self.expect("any", f"or 'since' after {'opened' if kind == 'open' else 'clicked'}")
        self.expect("of", "after 'any'")
        self.expect("last", "after 'any of'")
        last = self.count()
        self.expect("sends", "after the number")
        return Engaged(kind, last_sends=last)

    def count(self) -> int:
        token = self.token
        if token.kind != "word" or not token.value.isascii() or not token.value.isdigit():
            found = self.shown(token)
            raise self.fail(
                f"expected a whole number, found {found}",
                code="segment.expected_number",
                found=found,
            )
        if not 1 <= int(token.value) <= COUNT_MAX:
            raise self.fail(
                f"the number must be from 1 to {COUNT_MAX}", code="segment.number", most=COUNT_MAX
            )
        self.at += 1
        return int(token.value)

    def date(self) -> datetime:
        token = self.token
        try:
            if token.kind != "word":
                raise ValueError
            if len(token.value) == 10:
                moment = datetime.combine(date.fromisoformat(token.value), time())
            else:
                moment = datetime.fromisoformat(token.value)
        except ValueError:
            found = self.shown(token)
            raise self.fail(
                f"expected a date like 2026-10-01 or 2026-10-01T09:00, found {found}",
                code="segment.expected_date",
                found=found,
            ) from None
        self.at += 1
        return moment if moment.tzinfo else moment.replace(tzinfo=self.zone)
