"""A deterministic demo Chroma store with the awkward cases real stores contain.

Three collections (cosine, l2, ip-through-legacy-metadata), clustered 384-d vectors (so
nearest neighbours mean something, as with real embeddings), and metadata covering
int/float/bool/str/lists, a big int above 2**53, whole-metadata None, unicode and
numeric-looking ids ("0042" beside "42"), empty and None documents.

Chroma 1.5 refuses a None *value* inside a metadata dict, so "None" appears as a whole
missing metadata (the case a store can actually hold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: (name, chroma space, share of the documents). The ip collection declares its space
#: through the legacy ``hnsw:space`` metadata only.
COLLECTIONS = (
    ("support-articles", "cosine", 0.55),
    ("product-docs", "l2", 0.35),
    ("release-notes", "ip", 0.10),
)
_WORDS = (
    "cache",
    "replica",
    "token",
    "alias",
    "vector",
    "shard",
    "timeout",
    "quota",
    "index",
    "tenant",
    "rollback",
    "snapshot",
    "latency",
    "schema",
    "webhook",
    "cluster",
)
_SPECIAL_IDS = (
    "0042",
    "42",
    "042",
    "café-ß-日本-001",
    "Ünïcødé ✓",
    "a/b c?d",
    "1e3",
    "-7",
    "x" * 200,
)


def _split(n_docs: int) -> list[int]:
    sizes = [int(n_docs * share) for _, _, share in COLLECTIONS]
    sizes[0] += n_docs - sum(sizes)
    return sizes


def _ids(n: int, prefix: str, with_special: bool) -> list[str]:
    ids = [f"{prefix}-{i:06d}" for i in range(n)]
    if with_special:
        k = min(len(_SPECIAL_IDS), n)
        ids[:k] = _SPECIAL_IDS[:k]
    return ids


def _vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    centers = rng.standard_normal((max(8, n // 150), dim)).astype(np.float32)
    labels = rng.integers(0, len(centers), n)
    return (centers[labels] + 0.45 * rng.standard_normal((n, dim))).astype(np.float32)


def _metadata(rng: np.random.Generator, i: int) -> dict[str, Any] | None:
    if i % 17 == 3:
        return None
    meta: dict[str, Any] = {
        "source": ["kb", "wiki", "ticket"][i % 3],
        "page": int(rng.integers(1, 500)),
        "score": float(np.round(rng.random(), 6)),
        "weight": 2.0,  # a float that looks like an int: must stay 2.0
        "version": 2,  # an int: must stay 2, never 2.0
        "published": bool(i % 2),
        "title": f"Ärger mit {_WORDS[i % len(_WORDS)]} – 第{i}章",
    }
    if i % 5 == 0:
        meta["tags"] = [_WORDS[i % 16], _WORDS[(i + 3) % 16]]
    if i % 7 == 0:
        meta["counts"] = [int(i), int(i) + 1]
    if i % 11 == 0:
        meta["big_int"] = 2**53 + 1
    if i % 13 == 0:
        meta["flags"] = [True, False]
    return meta


def _document(rng: np.random.Generator, i: int) -> str | None:
    if i % 97 == 5:
        return ""
    if i % 89 == 7:
        return None
    words = rng.choice(len(_WORDS), size=12)
    return f"Doc {i}: " + " ".join(_WORDS[w] for w in words) + " ✓"


def make_demo_chroma(
    path: str | Path,
    n_docs: int = 14365,
    dim: int = 384,
    seed: int = 0,
    collections: tuple = COLLECTIONS,
) -> Path:
    """Create the demo Chroma store at ``path`` (which must not exist or be empty).

    >>> make_demo_chroma("/tmp/demo-chroma", n_docs=1500)  # doctest: +SKIP
    PosixPath('/tmp/demo-chroma')
    """
    import chromadb
    from chromadb.config import Settings

    from opsbook.errors import ConfigError

    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{path} is not empty", hint="pass a new folder for the demo store")
    if n_docs < 1 or dim < 1:
        raise ConfigError(f"n_docs and dim must be positive (got {n_docs}, {dim})")
    rng = np.random.default_rng(seed)
    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False)
    )
    for (name, space, _), n in zip(collections, _split(n_docs), strict=True):
        if space == "ip":
            col = client.create_collection(
                name, embedding_function=None, metadata={"hnsw:space": space, "team": "docs"}
            )
        else:
            col = client.create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": space}}
            )
        _fill(col, rng, n, dim, name, with_special=space != "ip")
    return path


def _fill(
    col: Any, rng: np.random.Generator, n: int, dim: int, name: str, with_special: bool
) -> None:
    ids = _ids(n, name.split("-")[0], with_special)
    vectors = _vectors(rng, n, dim)
    if not with_special:  # the ip collection holds unit vectors, as embedding models emit
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metas = [_metadata(rng, i) for i in range(n)]
    docs = [_document(rng, i) for i in range(n)]
    step = 2000
    for s in range(0, n, step):
        col.add(
            ids=ids[s : s + step],
            embeddings=vectors[s : s + step],
            metadatas=metas[s : s + step],
            documents=docs[s : s + step],
        )
