-- Web sessions (the cookie holds the secret; only its SHA-256 is stored) and search.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Full-text search: name weighs most, then keywords, then the description.
ALTER TABLE packages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', name), 'A') ||
    setweight(to_tsvector('simple', keywords), 'B') ||
    setweight(to_tsvector('simple', description), 'C')
) STORED;
CREATE INDEX packages_search ON packages USING GIN (search);
