"""Load policy YAML from files, merge it, and validate it with line numbers.

A policy is a file or a directory of files. Platform teams own org-wide files, teams their
own; mapping sections merge by key, and a key defined twice is an error naming both places.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from control_plane.gcpause import without_gc
from control_plane.policy.errors import PolicyError, PolicyIssue
from control_plane.policy.models import Loc, Policy, access_issues, reference_issues

MERGED_SECTIONS = ("providers", "models", "teams", "budgets", "prices")
SINGLE_SECTIONS = ("defaults", "gateway")
_SUFFIXES = (".yaml", ".yml")
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """libyaml's parser, which gives the same nodes and marks as the pure-Python one several
    times faster; the tag of a plain scalar is resolved once per distinct text, since a policy
    repeats the same keys and names thousands of times (the tag depends on the text alone)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> Any:
        if kind is not yaml.ScalarNode or not implicit[0]:
            return super().resolve(kind, value, implicit)
        tag = self._plain_tags.get(value)
        if tag is None:
            tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
        return tag
_STR = "tag:yaml.org,2002:str"


class _Sources:
    """Where each value of the merged policy came from: (file, line) by path."""

    def __init__(self) -> None:
        self._by_loc: dict[Loc, tuple[str, int]] = {}

    def add(self, loc: Loc, file: str, line: int) -> None:
        self._by_loc[loc] = (file, line)

    def adopt(self, other: _Sources, prefixes: set[Loc]) -> None:
        """Take over every location `other` recorded at or below one of `prefixes`, which
        are sections or section entries. One pass: a policy can have thousands of entries."""
        for loc, place in other._by_loc.items():
            if loc[:1] in prefixes or loc[:2] in prefixes:
                self._by_loc[loc] = place

    def locate(self, loc: Loc) -> tuple[str, int]:
        """The nearest recorded ancestor of `loc`."""
        for end in range(len(loc), -1, -1):
            if (found := self._by_loc.get(loc[:end])) is not None:
                return found
        return ("<policy>", 0)


def policy_files(path: Path) -> list[Path]:
    """The file itself, or every *.yaml / *.yml under a directory (hidden ones skipped,
    which also skips the timestamped copies inside a mounted ConfigMap)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return []


def load_path(path: str | Path) -> Policy:
    """Read and validate a policy file or directory."""
    root = Path(path)
    files = policy_files(root)
    if not files:
        reason = "no .yaml or .yml files here" if root.is_dir() else "no such file or directory"
        raise PolicyError([PolicyIssue(str(root), 0, "", reason)])
    return load_documents({str(p): p.read_text(encoding="utf-8") for p in files})


@without_gc
def load_documents(docs: Mapping[str, str]) -> Policy:
    """Merge and validate policy documents given as {file name: YAML text}."""
    if not docs:
        raise PolicyError([PolicyIssue("<policy>", 0, "", "no policy documents")])
    sources = _Sources()
    merged: dict[str, Any] = {}
    issues: list[PolicyIssue] = []
    for file in sorted(docs):
        try:
            node = _compose(docs[file])
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 0
            issues.append(PolicyIssue(file, line, "", f"invalid YAML: {_yaml_problem(exc)}"))
            continue
        if node is None:
            continue
        if not isinstance(node, yaml.MappingNode):
            issues.append(PolicyIssue(file, node.start_mark.line + 1, "", "expected a mapping"))
            continue
        issues.extend(_merge_document(file, node, merged, sources))
    if issues:
        raise PolicyError(issues)
    return _validate(merged, sources)


def _merge_document(
    file: str, node: yaml.MappingNode, merged: dict[str, Any], sources: _Sources
) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    local = _Sources()
    adopted: set[Loc] = set()
    constructor = yaml.constructor.SafeConstructor()
    for key_node, value_node in node.value:
        section = key_node.value
        local.add((section,), file, key_node.start_mark.line + 1)
        value = _to_python(value_node, file, (section,), local, constructor)
        if section in MERGED_SECTIONS and isinstance(value, dict) and isinstance(
            merged.get(section, {}), dict
        ):
            if section not in merged:
                sources.add((section,), *local.locate((section,)))
            target = merged.setdefault(section, {})
            for name, entry in value.items():
                if name in target:
                    first_file, first_line = sources.locate((section, name))
                    issues.append(PolicyIssue(
                        file, local.locate((section, name))[1], f"{section}.{name}",
                        f"defined twice (first at {first_file}:{first_line})"))
                    continue
                target[name] = entry
                adopted.add((section, name))
        elif section in merged:
            first_file, first_line = sources.locate((section,))
            issues.append(PolicyIssue(file, local.locate((section,))[1], section,
                                      f"defined twice (first at {first_file}:{first_line})"))
        else:
            merged[section] = value
            adopted.add((section,))
    sources.adopt(local, adopted)
    return issues


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        # The pure-Python parser words its errors better; a broken file is rare, re-read it.
        return yaml.compose(text, Loader=yaml.SafeLoader)


def _to_python(node: yaml.Node, file: str, loc: Loc, sources: _Sources,
               constructor: yaml.constructor.SafeConstructor) -> Any:
    """Construct plain Python from a YAML node, recording the line of every key and item."""
    if node.tag == _STR and isinstance(node, yaml.ScalarNode):  # the node's text is the value
        return node.value
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (key_node.value if key_node.tag == _STR and isinstance(key_node, yaml.ScalarNode)
                   else constructor.construct_object(key_node, deep=True))
            sources.add((*loc, key), file, key_node.start_mark.line + 1)
            result[key] = _to_python(value_node, file, (*loc, key), sources, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            sources.add((*loc, index), file, item.start_mark.line + 1)
            items.append(_to_python(item, file, (*loc, index), sources, constructor))
        return items
    return constructor.construct_object(node, deep=True)


def _validate(merged: dict[str, Any], sources: _Sources) -> Policy:
    try:
        policy = Policy.model_validate(merged)
    except ValidationError as exc:
        raise PolicyError([_issue(merged, tuple(e["loc"]), e["msg"], sources)
                           for e in exc.errors()]) from None
    issues = (*reference_issues(policy), *access_issues(policy))
    problems = [_issue(merged, loc, message, sources) for loc, message in issues]
    if problems:
        raise PolicyError(problems)
    return policy


def _issue(data: Any, loc: Loc, message: str, sources: _Sources) -> PolicyIssue:
    path = _data_path(data, loc)
    file, line = sources.locate(path)
    return PolicyIssue(file, line, _dotted(path), message.removeprefix("Value error, "))


def _data_path(data: Any, loc: Loc) -> Loc:
    """The part of a pydantic location that exists in the data, plus a missing field's name.

    Pydantic adds union tags ("openai") and validator names to locations; they name nothing
    a policy author wrote, so they are dropped.
    """
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif (isinstance(current, dict) and isinstance(part, str)
              and current.get("kind") != part and not part.startswith("function-")):
            path.append(part)  # a required field that is missing: name it
            break
        else:
            continue
        path.append(part)
    return tuple(path)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]
