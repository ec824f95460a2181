-- Kernel matrices (`cargo ebpf test-kernels`, attached by `publish --sign --test-kernels`)
-- the hub verified against the repository owner's keys when their `sha256-<hex>.att` tag
-- was pushed: one row per (repository, tested manifest), the newest verified wins.
CREATE TABLE kernel_matrices (
    repo TEXT NOT NULL,
    subject_digest TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_owner TEXT NOT NULL,
    -- The matrix as JSON (package/src/kernel_matrix.rs), bounded when read.
    matrix TEXT NOT NULL,
    -- The oldest kernel series from which every tested series passed, as
    -- major * 1000 + minor (5.10 → 5010); NULL when the newest tested series failed.
    loads_from BIGINT,
    verified_at BIGINT NOT NULL,
    PRIMARY KEY (repo, subject_digest)
);
