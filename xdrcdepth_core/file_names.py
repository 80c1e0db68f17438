"""File names made of data: sample tokens read from untrusted tables and cache files.

A token written into a path as it is could put a file anywhere: ``../../x`` or ``/tmp/x`` outside the output
folder (over a file the command did not write), and a NUL byte fails in words that name no file. Pictures
(``demo``, ``eval --panels``) take :func:`token_file_name`; ``prepare``, whose file names are the cache's index
(two tokens must not share one), refuses a token that is not already one (:func:`is_token_file_name`).
"""

from __future__ import annotations

import re

#: the longest file-name stem made of a token (file systems take 255 bytes; nuScenes tokens have 32 characters)
MAX_STEM = 100


def token_file_name(token: str) -> str:
    """``token`` as a file-name stem: characters other than letters, digits, ``_``, ``-`` and ``.`` become ``_``,
    no leading dot, at most :data:`MAX_STEM` characters. nuScenes tokens (hexadecimal) pass unchanged."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(token))[:MAX_STEM].lstrip(".")
    return stem or "_"


def is_token_file_name(token: str) -> bool:
    """Whether ``token`` is its own :func:`token_file_name` (usable as a file name as it is)."""
    return token_file_name(token) == token
