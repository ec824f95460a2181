-- The package's README.md (from its program layer), shown on the package page; empty when
-- the package has none (the page shows the description then).
ALTER TABLE packages ADD COLUMN readme TEXT NOT NULL DEFAULT '';
