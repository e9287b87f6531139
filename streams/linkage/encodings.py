"""Keyed encodings that let the linker compare values it never sees: Bloom filters and codes.

A CLK-style Bloom filter (Schnell et al. 2009) of a name sets, for each character bigram of the
padded name ("_smith_" -> "_s", "sm", ..., "h_"), `HASHES` bit positions chosen by HMAC-SHA256 under
the linkage domain's key, keyed again per field (`bloom:given_name`, `bloom:family_name`). Two
names' filters share bits roughly in proportion to their shared bigrams, so the Dice coefficient
of the filters approximates the Dice coefficient of the bigram sets ("smith"/"smyth" ~ 0.7) while
the filter alone does not give the name back to whoever lacks the key. What it does NOT protect is
documented in docs/linkage.md (frequency attacks on common names by someone holding many filters).

Soundex is a public phonetic code; the enforcer keys its output like any other token, so only
equality of codes reaches the linker.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable

__all__ = ["BITS", "HASHES", "bigram_mask", "bigrams", "bloom", "decode_bloom", "dice", "soundex"]

BITS = 1024  # per field; 10 hashes x ~7 bigrams set ~7% of the bits, so chance collisions are rare
HASHES = 10
_MASK = BITS - 1
_BYTES = BITS // 8

_SOUNDEX = str.maketrans(
    "bfpvcgjkqsxzdtlmnr",
    "111122222222334556",
)


def bigrams(name: str) -> set[str]:
    """Character bigrams of `name` padded with "_" at both ends (so first and last letters count)."""
    padded = f"_{name}_"
    return {padded[i : i + 2] for i in range(len(padded) - 1)}


def bigram_mask(mac: hmac.HMAC, bigram: str) -> int:
    """The `HASHES` bits of one bigram: 16-bit slices of HMAC(primed `mac`, bigram)."""
    h = mac.copy()
    h.update(bigram.encode())
    digest = h.digest()
    mask = 0
    for i in range(HASHES):
        mask |= 1 << (int.from_bytes(digest[2 * i : 2 * i + 2], "big") & _MASK)
    return mask


def bloom(mask_of: Callable[[str], int], name: str) -> str:
    """base64 of the `BITS`-bit filter of `name`'s bigrams (`mask_of` gives one bigram's bits)."""
    bits = 0
    for gram in bigrams(name):
        bits |= mask_of(gram)
    return base64.b64encode(bits.to_bytes(_BYTES, "big")).decode("ascii")


def decode_bloom(text: str) -> int:
    """A filter as an integer (bit operations and `int.bit_count` are the fast path in CPython)."""
    return int.from_bytes(base64.b64decode(text), "big")


def dice(a: int, b: int, a_count: int, b_count: int) -> float:
    """2|A and B| / (|A| + |B|) over set bits; `*_count` are the filters' popcounts."""
    total = a_count + b_count
    return 2 * (a & b).bit_count() / total if total else 0.0


def soundex(name: str) -> str:
    """American Soundex of a normalised (lower-case letters) name: first letter + 3 digits."""
    letters = [c for c in name if "a" <= c <= "z"]
    if not letters:
        return ""
    coded = [c.translate(_SOUNDEX) for c in letters]
    out = [letters[0].upper()]
    previous = coded[0]
    for c, code in zip(letters[1:], coded[1:], strict=True):
        if code.isdigit() and code != previous:
            out.append(code)
        if c not in "hw":  # h and w do not separate two letters of one code; vowels do
            previous = code
        if len(out) == 4:
            break
    return "".join(out).ljust(4, "0")
