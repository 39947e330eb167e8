"""Encounter versions in HTTP headers: `ETag: "<version>"`, and the If-Match / If-None-Match
conditions (RFC 9110 section 13.1) that name them.

A header that is not `*` or a list of entity tags is a 400. Entity tags that cannot be one of
ours (weak ones for If-Match, which compares strongly; any tag not a version number) match no
encounter.
"""

from __future__ import annotations

import re

from litestar.exceptions import ValidationException

NONE_OF_OURS = 0  # versions start at 1: a condition that lists only this matches no encounter
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


def etag(version: int) -> str:
    return f'"{version}"'


def weak_etag(version: int) -> str:
    """The ETag of a FHIR read (FHIR R4 http.html: servers answer weak ETags, W/"<versionId>")."""
    return f"W/{etag(version)}"


def _tags(name: str, value: str) -> list[tuple[bool, str]]:
    """(weak, opaque value) of each entity tag of a list; a 400 naming the header if it is not one."""
    tags = []
    for item in filter(str.strip, value.split(",")):  # a list may have empty items (RFC 9110 5.6.1)
        match = _ENTITY_TAG.fullmatch(item)
        if match is None:
            raise ValidationException(f'{name}: expected * or a list of entity tags such as "3", got {value!r}')
        tags.append((match.group(1) is not None, match.group(2)))
    if not tags:
        raise ValidationException(f"{name}: expected * or a list of entity tags, got an empty value")
    return tags


_OUR_TAG = re.compile(r"[1-9][0-9]{0,17}")  # as etag() spells a version (bigint)


def _version(opaque: str) -> int:
    return int(opaque) if _OUR_TAG.fullmatch(opaque) else NONE_OF_OURS


def if_match(value: str | None) -> list[int]:
    """The versions an If-Match header accepts, for the write functions: [] when there is no
    condition (no header, or *), else the strong tags' versions ([NONE_OF_OURS] if none)."""
    if value is None or value.strip() == "*":
        return []
    return [_version(opaque) for weak, opaque in _tags("If-Match", value) if not weak] or [NONE_OF_OURS]


def none_match(value: str | None, version: int) -> bool:
    """Whether an If-None-Match header names `version` (weak comparison; * names any version)."""
    if value is None:
        return False
    if value.strip() == "*":
        return True
    return any(_version(opaque) == version for _weak, opaque in _tags("If-None-Match", value))
