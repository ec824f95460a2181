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
-- Relevance reads a thousand matches in download order: the columns it filters and scores
-- on are in the index, so a package that does not match costs no row lookup.
CREATE INDEX packages_by_downloads ON packages
    (downloads DESC, repo, latest_version, hidden, name, owner, keywords, search_text);
CREATE INDEX packages_by_updated ON packages (updated_at DESC, repo);
CREATE INDEX packages_by_stars ON packages (star_count DESC, downloads DESC, repo);
CREATE INDEX packages_name ON packages (name);
CREATE INDEX stars_repo ON stars (repo);
CREATE INDEX versions_digest ON versions (repo, digest);
CREATE INDEX packages_kernel ON packages (kernel_from);
-- Substring search through a trigram index for rare words (a common word is cheaper to
-- check row by row along the sort's index, which stops at the page): repo and search text
-- of every package, kept in step by `Db::refresh_search`.
CREATE VIRTUAL TABLE packages_trigrams USING fts5(repo, search_text, tokenize = 'trigram');
INSERT INTO packages_trigrams (repo, search_text) SELECT repo, search_text FROM packages;
