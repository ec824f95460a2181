-- Defences against hostile clients and packages (issue 11).

-- Fixed-window counters shared by every hub process on this database: password guesses per
-- account and per address, registrations, publishes, counted downloads. `key` holds the
-- limit, the subject and the window number, so a new window is a new row.
CREATE TABLE rate_hits (
    key TEXT PRIMARY KEY,
    hits BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX rate_hits_expiry ON rate_hits (expires_at);

-- Secrets every hub process must agree on (the CSRF key), made once by whichever starts first.
CREATE TABLE hub_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The blobs each accepted manifest references: only these are served, and a blob no
-- manifest references is garbage once its grace period is over.
CREATE TABLE manifest_blobs (
    repo TEXT NOT NULL,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, digest)
);
CREATE INDEX manifest_blobs_digest ON manifest_blobs (repo, digest);

-- A package's BPF object, taken out of its layer once at push (bounded) and kept as a
-- blob, so the download page never decompresses a layer again.
CREATE TABLE layer_objects (
    layer_digest TEXT NOT NULL,
    object TEXT NOT NULL,
    object_digest TEXT NOT NULL,
    PRIMARY KEY (layer_digest, object)
);

-- When a blob was linked into a repository: the collector leaves young links alone (a push
-- uploads its blobs before its manifest).
ALTER TABLE repo_blobs ADD COLUMN linked_at BIGINT NOT NULL DEFAULT 0;
