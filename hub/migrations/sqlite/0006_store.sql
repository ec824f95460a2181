-- The store: search over everything a package says, filters and sorts, the full metadata
-- of each version (its page shows params, event fields and the plan), downloads per day,
-- and upload bytes kept in the database so any hub process can continue an upload.

-- The package format (cargo-ebpf, eunomia, gadget, bumblebee, bpfman) and the version's
-- PackageMeta as JSON ('' for versions indexed before this migration).
ALTER TABLE versions ADD COLUMN format TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN meta TEXT NOT NULL DEFAULT '';

-- Written from the latest version by Db::refresh_search: lowercase text searched with
-- LIKE (owner, name, description, keywords, program names and sections), and
-- space-padded facet lists (' xdp tracepoint ') filtered with LIKE '% xdp %'.
ALTER TABLE packages ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN prog_types TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN attach_types TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN arches TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN format TEXT NOT NULL DEFAULT '';

-- Pulls per package per UTC day (day = Unix time / 86400), for the downloads chart.
CREATE TABLE download_days (
    repo TEXT NOT NULL,
    day BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (repo, day)
);

-- The bytes of uploads in progress, in pieces of at most 1 MiB at their byte offset, so
-- a chunked upload may continue on any hub process behind a load balancer.
ALTER TABLE uploads ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL,
    offset_bytes BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (upload_id, offset_bytes)
);

-- Admins hide a package (it stays pullable, but no page lists it) and disable users;
-- owners deprecate a package with a message.
ALTER TABLE packages ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN deprecated TEXT NOT NULL DEFAULT '';

-- Profiles: what a user says about themselves, and their role.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
-- JSON array of http(s) URLs.
ALTER TABLE users ADD COLUMN links TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN is_admin BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;

CREATE TABLE follows (
    follower TEXT NOT NULL,
    followee TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (follower, followee)
);
