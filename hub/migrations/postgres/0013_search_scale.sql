-- Search that scales (issue 15): what a search sorts and filters on is kept on the package
-- row and indexed, so a search reads a page of an index instead of every match.
-- star_count, signed and kernel_from describe the latest version; `Db::refresh_package_flags`
-- rewrites them whenever a star, signature, kernel matrix or the latest version changes.
ALTER TABLE packages ADD COLUMN star_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN signed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN kernel_from BIGINT;
UPDATE packages SET
    star_count = (SELECT COUNT(*) FROM stars s WHERE s.repo = packages.repo),
    signed = CASE WHEN EXISTS (SELECT 1 FROM versions v JOIN verified_signatures s
        ON s.repo = v.repo AND s.subject_digest = v.digest
        WHERE v.repo = packages.repo AND v.version = packages.latest_version) THEN 1 ELSE 0 END,
    kernel_from = (SELECT MIN(k.loads_from) FROM versions v JOIN kernel_matrices k
        ON k.repo = v.repo AND k.subject_digest = v.digest
        WHERE v.repo = packages.repo AND v.version = packages.latest_version);
CREATE INDEX packages_by_downloads ON packages (downloads DESC, repo);
CREATE INDEX packages_by_updated ON packages (updated_at DESC, repo);
CREATE INDEX packages_by_stars ON packages (star_count DESC, downloads DESC, repo);
CREATE INDEX packages_name ON packages (name);
CREATE INDEX stars_repo ON stars (repo);
CREATE INDEX versions_digest ON versions (repo, digest);
CREATE INDEX packages_kernel ON packages (kernel_from);
-- Owner filters (`q=alice/`) read a range of repository names in byte order.
CREATE INDEX packages_repo_bytes ON packages (repo COLLATE "C");
-- Substring search through trigram indexes (pg_trgm, in Debian's postgresql package and
-- trusted, so the database owner may create it). Without the extension search still works,
-- scanning instead.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX packages_search_trgm ON packages USING GIN (search_text gin_trgm_ops);
    CREATE INDEX packages_name_trgm ON packages USING GIN (name gin_trgm_ops);
    CREATE INDEX packages_keywords_trgm ON packages USING GIN (LOWER(keywords) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'no trigram indexes (%): search scans the packages table', SQLERRM;
END $$;
