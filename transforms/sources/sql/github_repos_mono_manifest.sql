-- The repositories of a Mono manifest from BigQuery's public GitHub dataset
-- (bigquery-public-data.github_repos): one row per repository with an allowed GitHub license,
-- enough stars and enough files of the selected languages, with the ref whose archive to read.
--
-- Written in BigQuery Standard SQL, restricted to what sqlglot transpiles to DuckDB, so the same
-- file runs live on BigQuery and over a local Parquet snapshot (transforms/sources/github_sql.py).
-- It reads no contents (2.3 TB live): only files' names, refs, paths and links, licenses and stars.
-- One ref per repository is picked with MAX/MIN and joins back, not ARRAY_AGG(... LIMIT 1), which
-- sqlglot does not transpile.
--
-- Every value is a named query parameter, never part of this text:
--   @extensions  ARRAY<STRING>  lowercase extensions without the dot ("py", ...) of the languages
--   @licenses    ARRAY<STRING>  allowed values of licenses.license (GitHub keys, "mit")
--   @min_stars   INT64          repositories with fewer watchers are dropped (no row: 0 stars)
--   @min_files   INT64          repositories with fewer matching files at the chosen ref are dropped
-- Table names are identifiers the caller rewrites through sqlglot's AST: `github_repos.X` becomes
-- the configured dataset's table X, and `github_repos.sample_repos` the configured stars table
-- (repo_name, watch_count).
WITH
  allowed_repos AS (
    SELECT l.repo_name, MIN(l.license) AS license
    FROM github_repos.licenses AS l
    WHERE l.license IN UNNEST(@licenses)
    GROUP BY l.repo_name
  ),
  starred_repos AS (
    SELECT a.repo_name, a.license, COALESCE(MAX(s.watch_count), 0) AS stars
    FROM allowed_repos AS a
    LEFT JOIN github_repos.sample_repos AS s ON s.repo_name = a.repo_name
    GROUP BY a.repo_name, a.license
    HAVING COALESCE(MAX(s.watch_count), 0) >= @min_stars
  ),
  -- Per repository and ref: the regular files (no symbolic links) with a selected extension.
  ref_files AS (
    SELECT f.repo_name, f.ref, COUNT(*) AS files
    FROM github_repos.files AS f
    JOIN starred_repos AS r ON r.repo_name = f.repo_name
    WHERE f.symlink_target IS NULL
      AND f.ref IS NOT NULL
      AND LOWER(REGEXP_EXTRACT(f.path, r'\.([^./]+)$')) IN UNNEST(@extensions)
    GROUP BY f.repo_name, f.ref
  ),
  most_files AS (
    SELECT repo_name, MAX(files) AS files FROM ref_files GROUP BY repo_name
  ),
  -- The archived ref: the one holding most of the repository's matching files, ties by smallest ref.
  chosen_ref AS (
    SELECT f.repo_name, MIN(f.ref) AS ref, ANY_VALUE(f.files) AS files
    FROM ref_files AS f
    JOIN most_files AS m ON m.repo_name = f.repo_name AND m.files = f.files
    GROUP BY f.repo_name
  )
SELECT
  r.repo_name,
  r.license,
  r.stars,
  c.ref,
  c.files
FROM chosen_ref AS c
JOIN starred_repos AS r ON r.repo_name = c.repo_name
WHERE c.files >= @min_files
ORDER BY r.repo_name
