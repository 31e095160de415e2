"""Which delegated roles a target path is delegated to (spec 5.6.7.2), in their listed order.

A role's ``paths`` are shell-style patterns matched segment by segment (the
path and the pattern split at ``/`` must have as many segments, and each
segment matches as ``fnmatch.fnmatchcase`` does: ``*``, ``?``, ``[set]``,
``[!set]``); ``path_hash_prefixes`` match the hex SHA-256 of the path.
MicroPython has no ``fnmatch``, so the matcher is here.
"""

import binascii
import hashlib


def _one(pattern: str, p: int, ch: str) -> int:
    """Where the pattern goes on after its token at *p* matched *ch*; -1 if it did not."""
    mark = pattern[p]
    if mark == "?":
        return p + 1
    if mark == "[":
        q = p + 1
        negate = q < len(pattern) and pattern[q] == "!"
        q += 1 if negate else 0
        close = pattern.find("]", q + 1)
        if close >= 0:
            body, hit, i = pattern[q:close], False, 0
            while i < len(body):
                if i + 2 < len(body) and body[i + 1] == "-":
                    hit = hit or body[i] <= ch <= body[i + 2]
                    i += 3
                else:
                    hit = hit or body[i] == ch
                    i += 1
            return close + 1 if hit != negate else -1
    return p + 1 if mark == ch else -1


def segment_matches(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(name, pattern)``, by backtracking over the last ``*``."""
    n = p = 0
    star, resume = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, n, p + 1
            continue
        after = _one(pattern, p, name[n]) if p < len(pattern) else -1
        if after >= 0:
            n, p = n + 1, after
        elif star >= 0:
            resume += 1
            n, p = resume, star + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def path_matches(path: str, pattern: str) -> bool:
    """Whether *path* falls under the delegation pattern *pattern*."""
    names, patterns = path.split("/"), pattern.split("/")
    if len(names) != len(patterns):
        return False
    for i, name in enumerate(names):
        if not segment_matches(name, patterns[i]):
            return False
    return True


def roles_for_target(roles: "list[dict[str, object]]", path: str) -> "list[tuple[str, bool]]":
    """``(name, terminating)`` of each role in *roles* (checked delegations) that *path* is in."""
    digest = ""
    found = []
    for role in roles:
        paths = role.get("paths")
        prefixes = role.get("path_hash_prefixes")
        if isinstance(paths, list):
            hit = any(path_matches(path, pattern) for pattern in paths)
        elif isinstance(prefixes, list):
            if not digest:
                digest = binascii.hexlify(hashlib.sha256(path.encode()).digest()).decode()
            hit = any(digest.startswith(prefix) for prefix in prefixes)
        else:
            hit = False
        if hit:
            found.append((str(role["name"]), role.get("terminating") is True))
    return found
