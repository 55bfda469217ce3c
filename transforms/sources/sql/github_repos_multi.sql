-- The Multi corpus: source files of the selected languages from BigQuery's public GitHub dataset
-- (bigquery-public-data.github_repos), one row per distinct content (git blob) id.
--
-- Written in BigQuery Standard SQL, restricted to what sqlglot transpiles to DuckDB, so the same
-- file runs live on BigQuery and over a local Parquet snapshot (transforms/github_sql.py). In
-- particular one row per content id is picked with MIN and a join back, not with
-- ARRAY_AGG(... ORDER BY ... LIMIT 1), which sqlglot does not transpile.
--
-- Every value is a named query parameter, never part of this text:
--   @extensions           ARRAY<STRING>  lowercase extensions without the dot ("py", "cc", ...)
--   @extension_languages  ARRAY<STRING>  the language of each extension (same length and order)
--   @licenses             ARRAY<STRING>  allowed values of licenses.license (GitHub keys, "mit")
--   @min_bytes, @max_bytes INT64         bounds on contents.size, inclusive
--   @min_stars            INT64          repositories with fewer watchers are dropped
-- Table names are identifiers the caller rewrites through sqlglot's AST: `github_repos.X` becomes
-- the configured dataset's table X, and `github_repos.sample_repos` the configured stars table
-- (repo_name, watch_count).
WITH
  extension_language AS (
    SELECT ext, language
    FROM UNNEST(@extensions) AS ext WITH OFFSET AS ext_pos
    JOIN UNNEST(@extension_languages) AS language WITH OFFSET AS language_pos
      ON ext_pos = language_pos
  ),
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
  candidates AS (
    SELECT f.id, f.repo_name, f.path, r.license, r.stars, e.language
    FROM github_repos.files AS f
    JOIN starred_repos AS r ON r.repo_name = f.repo_name
    JOIN extension_language AS e
      ON LOWER(REGEXP_EXTRACT(f.path, r'\.([^./]+)$')) = e.ext
    JOIN github_repos.contents AS c ON c.id = f.id
    WHERE f.symlink_target IS NULL
      AND c.binary = FALSE
      AND c.size BETWEEN @min_bytes AND @max_bytes
  ),
  -- The kept copy of each content id: the smallest repo_name, then the smallest path in it.
  first_repo AS (
    SELECT id, MIN(repo_name) AS repo_name FROM candidates GROUP BY id
  ),
  first_copy AS (
    SELECT c.id, c.repo_name, MIN(c.path) AS path
    FROM candidates AS c
    JOIN first_repo AS r ON r.id = c.id AND r.repo_name = c.repo_name
    GROUP BY c.id, c.repo_name
  )
SELECT
  k.id,
  k.repo_name,
  k.path,
  ANY_VALUE(m.license) AS license,
  ANY_VALUE(m.stars) AS stars,
  ANY_VALUE(m.language) AS language,
  ANY_VALUE(t.content) AS content
FROM first_copy AS k
JOIN candidates AS m ON m.id = k.id AND m.repo_name = k.repo_name AND m.path = k.path
JOIN github_repos.contents AS t ON t.id = k.id
WHERE t.content IS NOT NULL
GROUP BY k.id, k.repo_name, k.path
