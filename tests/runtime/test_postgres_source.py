"""A PostgreSQL database as the data source: what COPY's text would hide.

Each case loads the small valid company of `test_contract` into a fresh
schema, changes the database one way (a column type, where a table lives,
what the user may read), and lists what `open_data` + `check_data` say.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import pytest

from dsl.diagnostics import RevplanError, Severity
from runtime.contract import check_data
from runtime.data import open_data, quote
from tests.runtime.test_contract import GOOD

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def database():
    """(admin connection, schema, url whose search_path is the schema) for a schema holding GOOD."""
    url = os.environ.get("REVPLAN_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("REVPLAN_TEST_POSTGRES_URL is not set")
    schema = f"revplan_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE SCHEMA {schema}")
        pg.execute(f"SET search_path TO {schema}")
        try:
            for table, rows in GOOD.items():
                columns = list(rows[0])
                pg.execute(f"CREATE TABLE {table} ({', '.join(f'{quote(c)} text' for c in columns)})")
                with pg.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[c] or None for c in columns])
            pg.execute("ALTER TABLE deals ALTER amount TYPE numeric(18,2) USING amount::numeric,"
                       " ALTER close_date TYPE date USING close_date::date")
            yield pg, schema, with_options(url, f"-csearch_path={schema}")
        finally:
            pg.execute(f"DROP SCHEMA {schema} CASCADE")
            for (role,) in pg.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{schema}%",)):
                pg.execute(f"DROP ROLE {role}")


def apply(pg, schema: str, changes: list[str]) -> None:
    """Run a case's statements; `{s}` in them is the test's schema."""
    for statement in changes:
        pg.execute(statement.format(s=schema))


def with_options(url: str, options: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={options.replace('=', '%3D').replace(' ', '%20')}"


def as_user(url: str, user: str) -> str:
    """The same URL (and options), logging in as `user`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}"))


def diagnostics_of(url: str) -> list[tuple[str, int | None, str | None, str]]:
    with open_data(url) as data:
        return [(d.code, d.data.row if d.data else None, d.data.column if d.data else None, d.message)
                for d in check_data(data)]


def test_a_postgres_source_is_checked_like_a_file(database):
    pg, _, url = database
    pg.execute("UPDATE deals SET owner_rep_id = 'R404' WHERE id = 'D2'")
    with open_data(url) as data:
        diagnostics = check_data(data)
        assert data.connection.execute("SELECT sum(amount) FROM deals").fetchall() == [(Decimal("3800.50"),)]
        assert data.fingerprint and data.files()["deals"] == ()
    assert [(d.code, d.data.row, d.data.column) for d in diagnostics] == [("RD012", 2, "owner_rep_id")]
    assert diagnostics[0].data.file.endswith(" table deals")
    assert "(line" not in diagnostics[0].message  # rows of a table, not lines of a file


# (what the database is changed with, the checks' (code, row, column, words of the message)); `{s}` is the schema
TYPES = [
    pytest.param(["ALTER TABLE deals ALTER amount TYPE real"],
                 [("RD004", None, "amount", "REAL")], id="real money loses cents"),
    pytest.param(["ALTER TABLE deals ALTER amount TYPE double precision"],
                 [("RD004", None, "amount", "DOUBLE PRECISION")], id="double money"),
    pytest.param(["ALTER TABLE deals ALTER amount TYPE money USING amount::numeric::money"],
                 [("RD004", None, "amount", "MONEY")], id="money type, text in the server's locale"),
    pytest.param(["ALTER TABLE deals ALTER close_date TYPE timestamptz"],
                 [("RD004", None, "close_date", "TIMESTAMP WITH TIME ZONE")], id="timestamptz: the day is the zone's"),
    pytest.param(["ALTER TABLE deals ALTER close_date TYPE timestamp"],
                 [("RD004", None, "close_date", "TIMESTAMP")], id="timestamp"),
    pytest.param(["ALTER TABLE deals ALTER amount TYPE numeric"], [], id="numeric without a scale"),
    pytest.param(["CREATE DOMAIN {s}.cents AS numeric(18,2)", "ALTER TABLE deals ALTER amount TYPE {s}.cents"],
                 [], id="a domain over numeric"),
    pytest.param(["CREATE TYPE {s}.stage AS ENUM ('open', 'closed_won', 'closed_lost')",
                  "ALTER TABLE deals ALTER stage TYPE {s}.stage USING stage::{s}.stage"], [], id="an enum stage"),
    pytest.param(["ALTER TABLE deals ALTER id TYPE varchar(20)", "ALTER TABLE deals ADD extra jsonb"],
                 [], id="varchar ids and an extra json column"),
    pytest.param(["ALTER TABLE deals ALTER id TYPE char(10), ALTER stage TYPE char(20)"],
                 [], id="char(n) values, padded with blanks"),
    pytest.param(["ALTER TABLE deals ALTER amount TYPE numeric(18,4)", "UPDATE deals SET amount = 1.2345"],
                 [("RD007", 1, "amount", ""), ("RD007", 2, "amount", ""), ("RD007", 3, "amount", "")],
                 id="more decimals than cents"),
]


@pytest.mark.parametrize("changes, expected", TYPES)
def test_column_types_are_checked_from_the_catalog(database, changes, expected):
    pg, schema, url = database
    apply(pg, schema, changes)
    found = diagnostics_of(url)
    assert [(code, row, column) for code, row, column, _ in found] == [e[:3] for e in expected]
    assert all(words in message for (*_, message), (*_, words) in zip(found, expected, strict=True))


def test_dates_read_whatever_the_session_settings(database):
    pg, schema, url = database
    pg.execute("ALTER TABLE reps ALTER hire_date TYPE date USING hire_date::date")
    url = with_options(url.split("?")[0], f"-csearch_path={schema} -cDateStyle=SQL,DMY -cTimeZone=Pacific/Kiritimati")
    with open_data(url) as data:
        assert check_data(data) == []
        assert data.connection.execute("SELECT min(close_date), min(hire_date) FROM deals, reps").fetchall() \
            == [(*data.connection.execute("SELECT DATE '2027-01-15', DATE '2020-01-01'").fetchone(),)]


# Tables the search path finds, however they are stored or spelled, are read (not missing).
PLACES = [
    pytest.param(["ALTER TABLE deals RENAME TO crm_deals", "CREATE MATERIALIZED VIEW deals AS SELECT * FROM crm_deals"],
                 "deals", id="a materialized view"),
    pytest.param(["ALTER TABLE deals RENAME TO crm_deals", "CREATE VIEW deals AS SELECT * FROM crm_deals"],
                 "deals", id="a view"),
    pytest.param(['ALTER TABLE deal_splits RENAME TO "Deal_Splits"', 'ALTER TABLE deals RENAME TO "DEALS"'],
                 "DEALS", id="names in capitals"),
    pytest.param(["CREATE SCHEMA {s}_crm", "ALTER TABLE deals SET SCHEMA {s}_crm",
                  "ALTER TABLE deal_splits SET SCHEMA {s}_crm"], "{s}_crm.deals",
                 id="a second schema on the search path"),
]


@pytest.mark.parametrize("changes, shown", PLACES)
def test_tables_are_found_where_the_search_path_finds_them(database, changes, shown):
    pg, schema, url = database
    apply(pg, schema, changes)
    url = with_options(url.split("?")[0], f"-csearch_path={schema},{schema}_crm")
    try:
        with open_data(url) as data:
            assert check_data(data) == []
            assert data.connection.execute("SELECT sum(amount) FROM deals").fetchall() == [(Decimal("3800.50"),)]
            assert data.connection.execute("SELECT count(*) FROM deal_splits").fetchall() == [(2,)]
            # messages name the table as the database spells it, and its schema when not the first one
            assert data.tables["deals"].location.endswith(" table " + shown.format(s=schema))
    finally:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema}_crm CASCADE")


# What the source cannot give: an error naming it (RD001), never a table read as missing.
# The changes run after the reader (`{s}_reader`, who may read every table) is made.
REFUSALS = [
    pytest.param(["ALTER TABLE deals RENAME TO crm_deals",
                  "CREATE MATERIALIZED VIEW deals AS SELECT * FROM crm_deals WITH NO DATA"],
                 "postgres", "has not been populated", id="a materialized view never refreshed"),
    pytest.param(['CREATE TABLE "Deals" (id text)', 'ALTER TABLE deals RENAME TO "DEALS"'],
                 "postgres", "{s}.DEALS and {s}.Deals", id="one table in two cases"),
    pytest.param(["CREATE SCHEMA {s}_crm", "ALTER TABLE deal_splits SET SCHEMA {s}_crm",
                  "GRANT SELECT ON {s}_crm.deal_splits TO {s}_reader"],
                 "reader", "may not use schema {s}_crm, on its search path, which holds table deal_splits",
                 id="a schema on the search path the user may not use"),
    pytest.param(["ALTER TABLE deals ENABLE ROW LEVEL SECURITY",
                  "CREATE POLICY usd_only ON deals FOR SELECT TO {s}_reader USING (currency = 'USD')"],
                 "reader", "row-level security", id="a row-level security policy hiding deals"),
    pytest.param(["REVOKE SELECT ON deal_splits FROM {s}_reader"],
                 "reader", "may not read table deal_splits", id="a table the user may not read"),
    pytest.param(["REVOKE SELECT ON deals FROM {s}_reader", "GRANT SELECT (id, amount) ON deals TO {s}_reader"],
                 "reader", "may not read column(s) owner_rep_id", id="a schema column the user may not read"),
]


@pytest.mark.parametrize("changes, user, words", REFUSALS)
def test_what_cannot_be_read_is_an_error(database, changes, user, words):
    pg, schema, url = database
    reader = reader_role(pg, schema)
    apply(pg, schema, changes)
    url = with_options(url.split("?")[0], f"-csearch_path={schema},{schema}_crm")
    try:
        with pytest.raises(RevplanError) as caught:
            open_data(as_user(url, reader) if user == "reader" else url)
    finally:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema}_crm CASCADE")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "RD001" and words.format(s=schema) in diagnostic.message, diagnostic.message


def test_a_column_kept_back_from_the_user_is_a_warning(database):
    pg, schema, url = database
    reader = reader_role(pg, schema)
    pg.execute("ALTER TABLE deals ADD ssn text")
    pg.execute(f"REVOKE SELECT ON deals FROM {reader}")
    columns = ", ".join(quote(c) for c in GOOD["deals"][0])
    pg.execute(f"GRANT SELECT ({columns}) ON deals TO {reader}")
    with open_data(as_user(url, reader)) as data:
        found = check_data(data)
        assert "ssn" not in [c for (c, *_) in data.connection.execute("DESCRIBE deals").fetchall()]
    assert [(d.code, d.severity, d.data.column) for d in found] == [("RD034", Severity.WARNING, "ssn")]


def reader_role(pg, schema: str) -> str:
    """A login role that may read the schema's tables, as a CRM's reporting user would."""
    role = f"{schema}_reader"
    pg.execute(f"CREATE ROLE {role} LOGIN")
    pg.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    pg.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    return role


@pytest.mark.parametrize("url, shown", [
    ("postgresql://ann:zz9@[::1:5432/crm", "postgresql://[::1:5432/crm"),
    ("postgresql://ann:%zz9secret@127.0.0.1:5432/crm", "postgresql://127.0.0.1:5432/crm"),
])
def test_a_url_libpq_cannot_parse_is_refused_without_its_password(url, shown):
    """libpq's own message quotes the URL, or the piece of the password it could not decode."""
    with pytest.raises(RevplanError) as caught:
        open_data(url)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message.startswith(f"cannot read {shown} as a PostgreSQL URL")
    assert "zz9" not in diagnostic.message


def test_a_password_in_a_connection_error_is_hidden(database, monkeypatch):
    """Whatever a server or libpq says about a failed connection, the password is not repeated."""
    _, _, url = database

    def refuse(*args, **kwargs):
        raise psycopg.OperationalError('connection failed: password "s3cret" is not accepted')

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(RevplanError) as caught:
        open_data(as_user(url, "ann:s3cret"))
    assert "s3cret" not in caught.value.diagnostics[0].message
    assert 'password "***" is not accepted' in caught.value.diagnostics[0].message


def test_a_missing_table_points_at_the_search_path(database):
    pg, _, url = database
    pg.execute("DROP TABLE reps")
    with open_data(url) as data:
        [missing] = [d for d in check_data(data) if d.code == "RD002"]
    assert missing.hints[0].startswith("add a table named reps in a schema on the URL's search path")


def test_a_search_path_naming_no_schema_is_an_error(database):
    _, schema, url = database
    with pytest.raises(RevplanError) as caught:
        open_data(with_options(url.split("?")[0], f"-csearch_path={schema}_typo"))
    assert f"names schema {schema}_typo, which is not in the database" in caught.value.diagnostics[0].message
