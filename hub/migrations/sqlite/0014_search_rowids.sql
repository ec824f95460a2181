-- Search that scales (issue 15), SQLite only.
-- A trigram index row takes the rowid of its package row: a search joins its matches by
-- rowid instead of reading each match's repository back from the index (a third of a rare
-- word's search). The repository stays, unindexed, so that `Db::refresh_stale_search` can
-- check at startup that the two still agree (VACUUM may renumber a table's rowids).
DROP TABLE packages_trigrams;
CREATE VIRTUAL TABLE packages_trigrams USING fts5(repo UNINDEXED, search_text, tokenize = 'trigram');
INSERT INTO packages_trigrams (rowid, repo, search_text) SELECT rowid, repo, search_text FROM packages;
-- How many packages hold each trigram: a search looks a word up by its rarest one.
CREATE VIRTUAL TABLE packages_trigram_counts USING fts5vocab(packages_trigrams, 'row');
-- The kernel filter's index holds every column a filter checks, so a package that fails
-- one is never read from the table (`q=lat&arch=aarch64&kernel=5.10` read 1 400 rows for
-- 120 matches); packages with no kernel matrix, most of them, are left out.
DROP INDEX packages_kernel;
CREATE INDEX packages_kernel ON packages
    (kernel_from, latest_version, hidden, arches, prog_types, attach_types, format, signed,
     license, keywords, search_text)
    WHERE kernel_from IS NOT NULL;
