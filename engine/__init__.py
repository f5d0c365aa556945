"""The engine: index storage (registry, vectors, embedders), retrieval, caching and answers.

It never imports `sync` or `bot`: they depend on it, not the other way round."""
