"""Drop-in stores for RAG frameworks (optional extras: ``langchain``, ``llamaindex``)."""
