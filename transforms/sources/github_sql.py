"""The SQL files over BigQuery's github_repos dataset, for BigQuery and for DuckDB over a local snapshot.

Each file is described by a ``SqlFile``: its name under ``sql/`` and the snapshot tables and columns
it reads. ``MULTI`` (``sql/github_repos_multi.sql``, the Multi corpus's rows) is the default of every
function here; ``MONO_MANIFEST`` (``sql/github_repos_mono_manifest.sql``) selects the repositories of
a Mono manifest (``pipelines/github_manifest.py``). Both share one renderer, one parameter
convention and one snapshot check, so a second query cannot drift from the first.

``sql/github_repos_multi.sql`` is BigQuery Standard SQL. Values (extensions, languages, licenses,
bounds) are named query parameters, so a flag holding quotes or SQL can only ever be a value.
Tables are named ``github_repos.<table>`` in the file; ``render`` swaps them for the configured
dataset and stars table as identifiers in sqlglot's syntax tree, never by formatting text.

For a local run the same file is transpiled to DuckDB by sqlglot (``@name`` becomes ``$name``, a
DuckDB prepared-statement parameter) and executed by DuckDB over one Parquet file per table, each
exposed as a view named like the BigQuery table. ``export_snapshot_query`` streams the result into
Parquet files in batches, so the driver holds one batch at a time whatever the snapshot's size,
and the Beam pipeline then reads those files in parallel like any other input. (Running DuckDB
inside a DoFn would not scale either: one worker would still execute the whole query.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import re
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from schemas.files import sha256_of

SQL_FILE = "github_repos_multi.sql"
PLACEHOLDER_DATASET = "github_repos"
STARS_PLACEHOLDER = "sample_repos"
SNAPSHOT_TABLES = ("contents", "files", "licenses", "languages", "sample_repos")
LIVE_DATASET = "bigquery-public-data.github_repos"
# One file per language in CodeGen's multi-lingual data; .h is counted as C.
DEFAULT_EXTENSIONS = {
    "c": ("c", "h"),
    "cpp": ("cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++"),
    "go": ("go",),
    "java": ("java",),
    "javascript": ("js", "mjs", "cjs", "jsx"),
    "python": ("py",),
}
RESULT_SCHEMA = pa.schema([
    ("id", pa.string()), ("repo_name", pa.string()), ("path", pa.string()), ("license", pa.string()),
    ("stars", pa.int64()), ("language", pa.string()), ("content", pa.large_string()),
])
# The columns the query reads from each snapshot table and the kind of type each must have (the
# BigQuery table's STRING, INT64, BOOL); a table may hold more columns. A column of the wrong type
# would otherwise fail deep inside DuckDB's binder, or worse, compare as text.
_KINDS = {
    "string": (pa.types.is_string, pa.types.is_large_string, getattr(pa.types, "is_string_view", None)),
    "integer (int64)": (pa.types.is_integer,),
    "bool": (pa.types.is_boolean,),
}
SNAPSHOT_COLUMNS = {
    "contents": {"id": "string", "size": "integer (int64)", "binary": "bool", "content": "string"},
    "files": {"id": "string", "repo_name": "string", "path": "string", "symlink_target": "string"},
    "licenses": {"repo_name": "string", "license": "string"},
    "languages": {},
    STARS_PLACEHOLDER: {"repo_name": "string", "watch_count": "integer (int64)"},
}
# The columns the Mono manifest query reads: no contents (2.3 TB live), only names, refs and paths.
MONO_MANIFEST_COLUMNS = {
    "files": {"repo_name": "string", "ref": "string", "path": "string", "symlink_target": "string"},
    "licenses": {"repo_name": "string", "license": "string"},
    STARS_PLACEHOLDER: {"repo_name": "string", "watch_count": "integer (int64)"},
}
# The keys of licenses.license in bigquery-public-data.github_repos (GitHub's license keys). Several
# are not SPDX ids ("gpl-3.0" is SPDX's GPL-3.0-only), so an allow-list in SPDX form is matched
# against these keys through the same normalisation Mono's license filter uses.
GITHUB_LICENSE_KEYS = ("agpl-3.0", "apache-2.0", "artistic-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0",
                       "epl-1.0", "gpl-2.0", "gpl-3.0", "isc", "lgpl-2.1", "lgpl-3.0", "mit", "mpl-2.0",
                       "unlicense")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9_-]+$")  # project ids have '-', datasets and tables '_'


@dataclasses.dataclass(frozen=True)
class SqlFile:
    """One SQL file of ``sql/`` and the snapshot tables and columns it reads ({table: {column: kind}})."""

    name: str
    columns: dict

    @property
    def tables(self) -> tuple:
        return tuple(self.columns)

    def text(self) -> str:
        return importlib.resources.files("transforms.sources").joinpath("sql", self.name).read_text(encoding="utf-8")

    def sha256(self) -> str:
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()


MULTI = SqlFile(SQL_FILE, SNAPSHOT_COLUMNS)
MONO_MANIFEST = SqlFile("github_repos_mono_manifest.sql", MONO_MANIFEST_COLUMNS)


@dataclasses.dataclass(frozen=True)
class QueryParams:
    """The values of the query's named parameters."""

    languages: tuple
    licenses: tuple  # GitHub license keys as in licenses.license ("mit", "apache-2.0")
    min_bytes: int = 1
    max_bytes: int = 1 << 20
    min_stars: int = 0

    def named(self) -> dict:
        """``{parameter name: value}``; extensions and their languages as parallel arrays."""
        pairs = [(ext, lang) for lang in sorted(self.languages) for ext in DEFAULT_EXTENSIONS[lang]]
        return {
            "extensions": [ext for ext, _ in pairs],
            "extension_languages": [lang for _, lang in pairs],
            "licenses": sorted(self.licenses),
            "min_bytes": self.min_bytes,
            "max_bytes": self.max_bytes,
            "min_stars": self.min_stars,
        }


def sql_text(query: SqlFile = MULTI) -> str:
    return query.text()


def sql_sha256(query: SqlFile = MULTI) -> str:
    return query.sha256()


def github_license_keys(allowed: Iterable[str]) -> tuple:
    """The values of licenses.license that an allow-list in SPDX form (``normalize_allow_list``)
    accepts: GitHub's keys whose SPDX form is allowed, plus each allowed id in lowercase (a key
    this module does not list yet still matches when it is the SPDX id, as most are)."""
    from transforms.filters.licenses import normalize_license

    allowed = set(allowed)
    keys = {key for key in GITHUB_LICENSE_KEYS if normalize_license(key) in allowed}
    return tuple(sorted(keys | {spdx.lower() for spdx in allowed}))


def language_of(path: str, languages: Iterable[str]) -> str | None:
    """The language the query assigns to a path (its lowercase extension), or None."""
    ext = path.rsplit("/", 1)[-1]
    if "." not in ext:
        return None
    ext = ext.rsplit(".", 1)[1].lower()
    for lang in languages:
        if ext in DEFAULT_EXTENSIONS[lang]:
            return lang
    return None


def _split_table(name: str) -> list[str]:
    """``[project.]dataset.table`` (or a bare table) as its parts, each a plain BigQuery name."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(_NAME_PART.match(p) for p in parts):
        raise ValueError(f"not a table name: {name!r} (want [project.]dataset.table or table;"
                         " letters, digits, '_' and '-')")
    return parts


def render(dialect: str, dataset: str | None, stars_table: str = STARS_PLACEHOLDER,
           query: SqlFile = MULTI) -> str:
    """The SQL file ``query`` in ``dialect`` ("bigquery" or "duckdb") with its tables renamed as identifiers.

    ``dataset`` is ``project.dataset`` (or ``dataset``) for BigQuery, None for DuckDB's unqualified
    views; ``stars_table`` is a table of the dataset (``sample_repos``) or a qualified name.
    """
    import sqlglot
    from sqlglot import exp

    dataset_parts = _split_table(dataset) if dataset else []
    if len(dataset_parts) > 2:
        raise ValueError(f"not a dataset name: {dataset!r} (want [project.]dataset)")
    stars_parts = _split_table(stars_table)
    if dialect == "duckdb" and (len(stars_parts) != 1 or not _TABLE_NAME.match(stars_parts[0])):
        raise ValueError(f"a snapshot table is a plain name, got {stars_table!r}")
    tree = sqlglot.parse_one(query.text(), read="bigquery")

    def rename(node):
        if not isinstance(node, exp.Table) or node.db != PLACEHOLDER_DATASET:
            return node
        parts = [*dataset_parts, node.name]
        if node.name == STARS_PLACEHOLDER:
            parts = stars_parts if len(stars_parts) > 1 else [*dataset_parts, stars_parts[0]]
        *qualifiers, name = parts
        qualifiers = [None] * (2 - len(qualifiers)) + qualifiers
        table = exp.table_(name, db=qualifiers[1], catalog=qualifiers[0], quoted=True)
        if node.alias:
            table.set("alias", node.args["alias"])
        return table

    tree = tree.transform(rename)
    return tree.sql(dialect=dialect, pretty=True)


def schema_problem(table: str, schema: pa.Schema, expected: dict) -> str | None:
    """One line naming the table, the column and the type expected, where ``schema`` lacks a column
    of ``expected`` ({column: kind}) or holds it with another type; None when it fits. An all-null
    column (Arrow's null type) fits any kind."""
    for column, kind in expected.items():
        index = schema.get_field_index(column)
        if index < 0:
            return f"table {table} has no column {column} (expected {kind})"
        actual = schema.field(index).type
        if not pa.types.is_null(actual) and not any(test and test(actual) for test in _KINDS[kind]):
            return f"table {table}: column {column} is {actual}, expected {kind}"
    return None


def check_snapshot(snapshot_dir: str, stars_table: str = STARS_PLACEHOLDER, query: SqlFile = MULTI) -> dict:
    """``{table: path}`` of the tables ``query`` reads, each checked before any query runs: its
    Parquet file exists and its schema holds the columns the query reads with the types expected
    (``query.columns``; only the files' footers are read). ValueError, one line naming the table,
    the column and the type expected, otherwise."""
    import os

    import pyarrow.parquet as pq

    wanted = dict(query.columns)
    if stars_table != STARS_PLACEHOLDER and _TABLE_NAME.match(stars_table):
        wanted[stars_table] = query.columns[STARS_PLACEHOLDER]
    paths = {}
    for name, columns in wanted.items():
        path = os.path.join(snapshot_dir, f"{name}.parquet")
        if not os.path.isfile(path):
            raise ValueError(f"{snapshot_dir} has no {name}.parquet"
                             f" (a snapshot for {query.name} holds {', '.join(query.tables)})")
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as err:
            raise ValueError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
        problem = schema_problem(name, schema, columns)
        if problem:
            raise ValueError(f"{path}: {problem}")
        paths[name] = path
    return paths


def snapshot_tables(snapshot_dir: str, stars_table: str = STARS_PLACEHOLDER, query: SqlFile = MULTI) -> dict:
    """``{table: {path, bytes, sha256, rows}}`` for the snapshot's Parquet files that ``query``
    reads (Multi: all five), after ``check_snapshot`` (``stars_table`` too, where it is another
    table)."""
    import os

    import pyarrow.parquet as pq

    tables = {}
    for name, path in check_snapshot(snapshot_dir, stars_table, query).items():
        if name not in query.columns:
            continue  # a --stars_table: checked, but the manifest records the five tables as before
        with open(path, "rb") as handle:
            _, digest = sha256_of(handle)
        tables[name] = {"path": path, "bytes": os.path.getsize(path), "sha256": digest,
                        "rows": pq.ParquetFile(path).metadata.num_rows}
    return tables


def snapshot_connection(snapshot_dir: str, threads: int | None = None, stars_table: str = STARS_PLACEHOLDER,
                        query: SqlFile = MULTI):
    """A DuckDB connection with one view per Parquet file of the snapshot, named like the table
    (the tables ``query`` reads checked first: ``check_snapshot``)."""
    import duckdb

    import glob
    import os

    paths = check_snapshot(snapshot_dir, stars_table, query)
    for path in sorted(glob.glob(os.path.join(glob.escape(snapshot_dir), "*.parquet"))):
        name = os.path.basename(path)[: -len(".parquet")]
        if _TABLE_NAME.match(name):  # other tables of the snapshot, e.g. a --stars_table
            paths.setdefault(name, path)
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for name, path in paths.items():
        # The path is a value; DuckDB takes no parameters in DDL, so it is quoted as a literal.
        literal = "'" + path.replace("'", "''") + "'"
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({literal})')
    return con


def stream_snapshot_query(con, query: SqlFile, named: dict, stars_table: str = STARS_PLACEHOLDER,
                          batch_rows: int = 10_000):
    """``query``'s result over a snapshot connection with ``named`` parameters, as a stream of
    Arrow record batches of DuckDB's types: one batch in memory at a time."""
    relation = con.sql(render("duckdb", None, stars_table, query), params=named)
    # DuckDB 2 renamed fetch_arrow_reader to to_arrow_reader; both stream, batch by batch.
    stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    yield from stream(batch_rows)


def run_snapshot_query(con, params: QueryParams, stars_table: str = STARS_PLACEHOLDER,
                       batch_rows: int = 10_000):
    """The Multi query's result over a snapshot, as a stream of Arrow record batches (RESULT_SCHEMA)."""
    for batch in stream_snapshot_query(con, MULTI, params.named(), stars_table, batch_rows):
        yield from pa.Table.from_batches([batch]).cast(RESULT_SCHEMA).to_batches()


def export_snapshot_query(snapshot_dir: str, params: QueryParams, folder: str,
                          stars_table: str = STARS_PLACEHOLDER, rows_per_file: int = 50_000) -> dict:
    """Run the query over a snapshot into ``folder/part-NNNNN.parquet`` (any Beam filesystem).

    Returns ``{"rows", "bytes", "files"}`` (bytes: UTF-8 bytes of content). Files rotate every
    ``rows_per_file`` rows so the Beam read that follows has several files to spread.
    """
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    con = snapshot_connection(snapshot_dir, stars_table=stars_table)
    rows = nbytes = files = in_file = 0
    writer = handle = None

    def open_next():
        nonlocal writer, handle, files, in_file
        close()
        handle = FileSystems.create(f"{folder.rstrip('/')}/part-{files:05d}.parquet")
        writer = pq.ParquetWriter(handle, RESULT_SCHEMA)
        files, in_file = files + 1, 0

    def close():
        nonlocal writer, handle
        if writer is not None:
            writer.close()
            handle.close()
        writer = handle = None

    try:
        for batch in run_snapshot_query(con, params, stars_table):
            if writer is None or in_file >= rows_per_file:
                open_next()
            writer.write_batch(batch)
            rows += batch.num_rows
            in_file += batch.num_rows
            nbytes += int(pc.sum(pc.binary_length(batch.column("content"))).as_py() or 0)
        if files == 0:  # an empty result is still one (empty) file for the Beam read to match
            open_next()
    finally:
        close()
        con.close()
    return {"rows": rows, "bytes": nbytes, "files": files}
