"""The two Qdrant backends and what they share.

* :mod:`.client` — ``QdrantBackend``: a server or cluster through ``qdrant-client`` (or its
  local mode);
* :mod:`.edge` — ``QdrantEdgeBackend``: the Qdrant engine in-process through ``qdrant-edge-py``;
* :mod:`.schema` (collection layout, ids, payloads, store identity), :mod:`.filters` (the
  filter compiler), :mod:`.requests` (the funnel as nested prefetches) and :mod:`.store` (the
  protocol above six engine primitives, writes all or nothing with an undo journal).

Nothing is imported here, so that each backend needs only its own engine installed.
"""
