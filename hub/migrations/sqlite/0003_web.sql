-- Web sessions (the cookie holds the secret; only its SHA-256 is stored) and search.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Full-text search over packages, kept in step with `packages` by the indexer.
CREATE VIRTUAL TABLE packages_fts USING fts5(repo UNINDEXED, name, description, keywords);
