-- Accounts, API tokens, and the package index built on push. Flags are BIGINT 0/1 and
-- lists are JSON text so one query text works on SQLite and Postgres.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    email TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    label TEXT NOT NULL,
    -- SHA-256 of the secret: tokens are 128-bit random, so a fast hash suffices and lets
    -- each request find its token by equality.
    token_hash TEXT NOT NULL UNIQUE,
    can_pull BIGINT NOT NULL,
    can_push BIGINT NOT NULL,
    -- JSON array of repository prefixes (`alice/` or `alice/snoop`); empty = all of the user's.
    namespaces TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE packages (
    repo TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    keywords TEXT NOT NULL DEFAULT '[]',
    license TEXT NOT NULL DEFAULT '',
    authors TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL DEFAULT '',
    latest_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0,
    featured BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX packages_owner ON packages (owner);

CREATE TABLE versions (
    repo TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    created TEXT NOT NULL DEFAULT '',
    pushed_at BIGINT NOT NULL,
    arch TEXT NOT NULL DEFAULT '',
    runtime TEXT NOT NULL DEFAULT '',
    object TEXT NOT NULL DEFAULT '',
    layer_digest TEXT NOT NULL DEFAULT '',
    -- JSON array of {name, section, type}.
    programs TEXT NOT NULL DEFAULT '[]',
    downloads BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repo, version)
);

CREATE TABLE stars (
    user_name TEXT NOT NULL,
    repo TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_name, repo)
);
