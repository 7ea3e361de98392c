"""How the reference shows the API as it is called (a Griffe extension, loaded by mkdocs.yml).

- ``client.dnc.import_entries`` and the other endpoints are bound endpoint
  functions (``import_entries = _Endpoint(dnc.import_entries)`` in
  ``sendkit_async/client.py``); Griffe sees class attributes. Each becomes
  the method it is at runtime: the function's own signature without its
  first parameter (the session the resource binds), its docstring, its labels.
- Sphinx roles (``:class:`~x.Y```) and reST literals read well in ``help()``
  and mean nothing to Markdown (a literal over a line break falls apart in a
  table): they become one-line code spans.
- An entry for several names (``start, end: ...``) becomes one per name.
- Private bases (``_Resource``, ``_Result``, ``_Model``) are not shown.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|mod|func|meth|attr|exc|data|obj|py:\w+):`(~?)([^`]+)`")
_ENDPOINT = re.compile(r"^_Endpoint\((\w+)\.(\w+)\)$")
# reST's ``literal``, which may run over a line break: one Markdown code span on one line.
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def _without_argument(text: str, name: str) -> str:
    """The docstring without its ``name:`` entry under ``Args:`` (and that entry's continuation lines)."""
    kept: list[str] = []
    skipping: int | None = None  # the indent of the entry being dropped
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skipping is not None and line.strip() and indent > skipping:
            continue
        skipping = None
        if line.strip().startswith(f"{name}:"):
            skipping = indent
            continue
        kept.append(line)
    return "\n".join(kept)


_GROUPED = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")


def _one_name_per_entry(text: str) -> str:
    """``start, end: the span.`` (one entry for several names) as one entry per name, which Griffe parses."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        grouped = _GROUPED.match(lines[index])
        if grouped is None:
            out.append(lines[index])
            index += 1
            continue
        indent, names, first = grouped.groups()
        index += 1
        rest = []
        while (
            index < len(lines)
            and lines[index].strip()
            and len(lines[index]) - len(lines[index].lstrip()) > len(indent)
        ):
            rest.append(lines[index])
            index += 1
        for name in names.split(", "):
            out += [f"{indent}{name}: {first}", *rest]
    return "\n".join(out)


def _markdown(text: str) -> str:
    """A docstring in reST's inline roles and literals, in Markdown's code spans, one name per entry."""
    text = _one_name_per_entry(_ROLE.sub(_code, text))
    return _LITERAL.sub(lambda match: "`" + " ".join(match.group(1).split()) + "`", text)


def _code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SendKitDocs(griffe.Extension):
    """The three rewrites above, once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the package ``sendkit_async`` (others are left alone)."""
        del kwargs
        if pkg.name != "sendkit_async":
            return
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
        if isinstance(obj, griffe.Class):
            obj.bases = [base for base in obj.bases if not str(base).rsplit(".", 1)[-1].startswith("_")]
            self._bind_endpoints(obj)
        for member in list(obj.members.values()):
            if not member.is_alias and member.parent is obj:
                self._visit(member)  # type: ignore[arg-type]

    @staticmethod
    def _bind_endpoints(resource: griffe.Class) -> None:
        cls = resource
        module = cls.module
        for name, member in list(cls.members.items()):
            if member.is_alias or not isinstance(member, griffe.Attribute):
                continue
            found = _ENDPOINT.match(str(member.value or ""))
            if found is None:
                continue
            alias, function_name = found.groups()
            imported = module.imports.get(alias)
            if imported is None:
                continue
            function = cls.modules_collection[f"{imported}.{function_name}"]
            bound = next(iter(function.parameters)).name  # the session: the resource binds it
            method = griffe.Function(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                parameters=griffe.Parameters(griffe.Parameter("self"), *list(function.parameters)[1:]),
                returns=function.returns,
                docstring=griffe.Docstring(
                    _without_argument(_markdown(function.docstring.value), bound)
                    if function.docstring
                    else "",
                    parser=function.docstring.parser if function.docstring else None,
                ),
            )
            method.labels |= function.labels
            cls.set_member(name, method)
            method.docstring.parent = method  # type: ignore[union-attr]
