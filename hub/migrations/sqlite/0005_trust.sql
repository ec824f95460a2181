-- The hub keeps its word: yanked versions, users' signing keys, and what the hub itself
-- verified about each pushed signature.
-- A yanked version stays pullable by exact version but is no longer offered (latest,
-- search, the versions shown as installable). 0/1 like the other flags.
ALTER TABLE versions ADD COLUMN yanked BIGINT NOT NULL DEFAULT 0;

-- ECDSA P-256 public keys users register on their profile (PEM, SubjectPublicKeyInfo).
CREATE TABLE user_keys (
    user_name TEXT NOT NULL,
    -- `SHA256:<hex>` of the key's DER: how people and the CLI name a key.
    fingerprint TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    pem TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_name, fingerprint)
);

-- A signature the hub verified against the repository owner's keys when its
-- `sha256-<hex>.sig` tag was pushed: one row per (signed manifest, key that verified).
CREATE TABLE verified_signatures (
    repo TEXT NOT NULL,
    subject_digest TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_owner TEXT NOT NULL,
    key_label TEXT NOT NULL DEFAULT '',
    verified_at BIGINT NOT NULL,
    PRIMARY KEY (repo, subject_digest, fingerprint)
);
