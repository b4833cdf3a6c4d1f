"""Every named query parses as Trino SQL and, transpiled to DuckDB, returns the hand-computed answer over Parquet
files written with the Glue schemas from rows the transform made. "Today" is 2 January 2027, so every window
crosses December into January."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from components.analytics_queries import NamedQuery, QuerySettings, QuotaPolicy, named_queries
from lambda_src.common.lake_schema import PARTITIONED_TABLES
from lambda_src.common.log_records import event_rows, metric_rows
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE
from tests.lake import write_table
from tests.telemetry import Developer, api_request, claude_event, emf_event

TODAY = date(2027, 1, 2)
NOW = datetime(2027, 1, 2, 15, 0, tzinfo=UTC)
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "claude-opus-4-1-20250805"
ADA = Developer(session="s-a1")
BOB = Developer("bob@example.com", "u-bob", "acc-bob", "research", "interns", "CC-200", "s-b1", "2.0.10")
CAROL = Developer(None, "u-carol", "acc-carol", session="s-c1")
NOBODY = Developer(None, None, None, session="s-x")
SETTINGS = QuerySettings(
    time_zone="Europe/Berlin",
    quota_policies=(
        QuotaPolicy("default", monthly_usd=10, daily_tokens=1_000_000),
        QuotaPolicy("department", "research", monthly_usd=100),
        QuotaPolicy("team", "interns", monthly_tokens=500_000),
        QuotaPolicy("user", "ada@example.com", monthly_usd=1),
    ),
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def tokens(when: str, who: Developer, model: str, **by_type: int) -> list[dict[str, Any]]:
    return [
        emf_event(at(when), who, {"claude_code.token.usage": n}, model=model, type=kind) for kind, n in by_type.items()
    ]


def metric_log_events() -> list[dict[str, Any]]:
    day = "2026-12-30T09:00:00"
    return [
        *tokens("2026-10-20T12:00:00", ADA, SONNET, input=1_000_000),  # outside every window
        *tokens(day, ADA, SONNET, input=1_000_000, output=100_000, cacheRead=10_000_000),
        emf_event(at(day), ADA, {"claude_code.cost.usage": 7.4}, model=SONNET),
        emf_event(at(day), ADA, {"claude_code.session.count": 1, "claude_code.commit.count": 2}),
        emf_event(at(day), ADA, {"claude_code.pull_request.count": 1, "claude_code.active_time.total": 5400}),
        emf_event(at(day), ADA, {"claude_code.lines_of_code.count": 120}, type="added"),
        emf_event(at(day), ADA, {"claude_code.lines_of_code.count": 30}, type="removed"),
        *[
            emf_event(
                at(day), ADA, {"claude_code.code_edit_tool.decision": n}, tool_name="Edit", decision=d, language=lang
            )
            for lang, d, n in (("Python", "accept", 3), ("Python", "reject", 1), ("TypeScript", "accept", 2))
        ],
        *tokens("2027-01-02T08:00:00", ADA, SONNET, input=200_000, output=20_000),
        emf_event(at("2027-01-02T08:00:00"), ADA, {"claude_code.cost.usage": 0.95}, model=SONNET),
        # 23:30 UTC on New Year's Eve is 00:30 on 1 January in Berlin, the quota time zone
        *tokens("2026-12-31T23:30:00", BOB, OPUS, input=500_000, cacheCreation=100_000),
        emf_event(at("2026-12-31T23:30:00"), BOB, {"claude_code.session.count": 1}),
        emf_event(at("2026-12-31T23:30:00"), BOB, {"claude_code.cost.usage": 9.0}, model=OPUS),  # priced: tokens count
        *tokens("2027-01-01T10:00:00", BOB, "claude-mystery-9", output=10_000),
        # a model the table does not price: its cost is what the client reported, never $0
        emf_event(at("2027-01-01T10:00:00"), BOB, {"claude_code.cost.usage": 0.25}, model="claude-mystery-9"),
        *tokens("2027-01-02T12:00:00", CAROL, SONNET, input=100_000),
        emf_event(at("2027-01-02T12:00:00"), CAROL, {"claude_code.session.count": 1}),
        emf_event(at("2027-01-02T12:00:00"), CAROL, {"claude_code.active_time.total": 1800}),
        emf_event(at("2027-01-01T09:00:00"), NOBODY, {"claude_code.session.count": 1}),
    ]


def event_log_events() -> list[dict[str, Any]]:
    ada = [
        claude_event(at("2026-12-30T09:00:05"), ADA, "user_prompt", prompt_length="42"),
        *[
            api_request(at(f"2026-12-30T{t}"), ADA, SONNET, (10, 10, 0, 0), 0.01)
            for t in ("09:00:10", "09:00:40", "09:00:50", "09:01:30")
        ],
        claude_event(
            at("2026-12-30T09:00:20"), ADA, "tool_result", tool_name="Bash", success="true", duration_ms="100"
        ),
        claude_event(
            at("2026-12-30T09:00:45"), ADA, "tool_result", tool_name="Edit", success="false", duration_ms="300"
        ),
        claude_event(at("2026-12-30T09:02:00"), ADA, "api_error", model=SONNET, status_code="529", attempt="1"),
    ]
    bob = [
        api_request(at("2026-12-31T23:30:00"), BOB, OPUS, (10, 10, 0, 0), 0.5),
        api_request(at("2027-01-01T00:10:00"), BOB, OPUS, (10, 10, 0, 0), 0.5),
        claude_event(at("2027-01-01T00:11:00"), BOB, "api_error", model=OPUS, status_code="429", attempt="1"),
    ]
    carol = [
        api_request(at("2027-01-02T12:00:00"), CAROL, SONNET, (10, 10, 0, 0), 0.02),
        claude_event(
            at("2027-01-02T12:00:30"), CAROL, "tool_result", tool_name="Bash", success="true", duration_ms="200"
        ),
    ]
    return ada + bob + carol


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    root = tmp_path_factory.mktemp("lake")
    arrival = NOW.timestamp() * 1000  # every row arrived by "now"
    write_table(root, "metrics", [row for event in metric_log_events() for row in metric_rows(event, arrival)])
    write_table(root, "events", [row for event in event_log_events() for row in event_rows(event, arrival)])
    write_table(root, "prices", list(DEFAULT_PRICE_TABLE.rows()))
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for table in PARTITIONED_TABLES:
        connection.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{root}/{table}/*/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'dt': VARCHAR, 'hour': INTEGER})"
        )
    connection.execute(f"CREATE VIEW prices AS SELECT * FROM read_parquet('{root}/prices/*.parquet')")
    yield connection
    connection.close()


def at_fixed_time(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CurrentDate):
        return exp.cast(exp.Literal.string(TODAY.isoformat()), "date")
    if isinstance(node, exp.CurrentTimestamp):
        return exp.cast(exp.Literal.string(NOW.isoformat()), "timestamptz")
    return node


def run(lake: duckdb.DuckDBPyConnection, name: str) -> list[dict[str, Any]]:
    query = named_queries(SETTINGS)[name]
    tree = sqlglot.parse_one(query.sql, read="trino").transform(at_fixed_time)
    cursor = lake.execute(tree.sql(dialect="duckdb"))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


QUERIES = named_queries(SETTINGS)


def direct_tables(select: exp.Select) -> set[str]:
    """Tables this SELECT reads itself (its FROM and JOINs), not through a subquery or CTE."""
    sources = [select.args["from_"].this] if select.args.get("from_") else []
    sources += [join.this for join in select.args.get("joins") or []]
    return {source.name for source in sources if isinstance(source, exp.Table)}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_query_parses_as_trino_and_reads_only_a_date_range_of_partitions(name: str) -> None:
    query: NamedQuery = QUERIES[name]
    tree = sqlglot.parse_one(query.sql, read="trino")  # raises on anything Athena's engine would not parse
    reads = 0
    for select in tree.find_all(exp.Select):
        partitioned = direct_tables(select) & set(PARTITIONED_TABLES)
        if partitioned:
            reads += 1
            where = select.args.get("where")
            assert where is not None, f"{name}: reads {partitioned} without a WHERE"
            assert any(column.name == "dt" for column in where.find_all(exp.Column)), f"{name}: no dt range"
    assert reads >= 1
    assert not any(isinstance(node, exp.Year) for node in tree.find_all(exp.Year)), "no year() filters"
    assert len(query.description) > 20


def test_there_are_at_least_twelve() -> None:
    assert len(QUERIES) >= 12


def test_top_users_by_tokens(lake: duckdb.DuckDBPyConnection) -> None:
    rows = run(lake, "top_users_by_tokens")
    assert [(r["user_key"], r["total_tokens"]) for r in rows] == [
        ("ada@example.com", 11_320_000),  # October's million is outside the 30 days
        ("bob@example.com", 610_000),
        ("u-carol", 100_000),  # no email: attributed by user id
    ]
    assert rows[0]["cache_read_tokens"] == 10_000_000 and rows[1]["cache_creation_tokens"] == 100_000


def test_top_users_by_cost_prices_each_token_type(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["user_key"]: r for r in run(lake, "top_users_by_cost")}
    assert list(rows) == ["bob@example.com", "ada@example.com", "u-carol"]
    assert rows["bob@example.com"]["priced_cost_usd"] == pytest.approx(7.5 + 1.875)  # opus input + 5m cache writes
    assert rows["bob@example.com"]["unpriced_tokens"] == 10_000  # the unknown model is not free, it is unpriced
    assert rows["bob@example.com"]["cost_usd"] == pytest.approx(9.375 + 0.25)  # and costs what the client reported
    assert rows["bob@example.com"]["reported_cost_usd"] == pytest.approx(9.25)
    assert rows["ada@example.com"]["cost_usd"] == pytest.approx(8.4)  # priced: the table's cost, not the client's
    assert rows["ada@example.com"]["priced_cost_usd"] == pytest.approx(3 + 1.5 + 3 + 0.6 + 0.3)
    assert rows["ada@example.com"]["reported_cost_usd"] == pytest.approx(8.35)


def test_tokens_by_model_and_type(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {(r["model"], r["token_type"]): r["tokens"] for r in run(lake, "tokens_by_model_and_type")}
    assert rows[("claude-sonnet-4-5", "input")] == 1_300_000
    assert rows[("claude-opus-4-1", "cacheCreation")] == 100_000
    assert rows[("claude-mystery-9", "output")] == 10_000


def test_hourly_activity_pattern_is_in_the_configured_time_zone(lake: duckdb.DuckDBPyConnection) -> None:
    rows = [(r["hour_of_day"], r["requests"]) for r in run(lake, "hourly_activity_pattern")]
    assert rows == [(0, 1), (1, 1), (10, 4), (13, 1)]


def test_usage_by_team(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["team_id"]: r for r in run(lake, "usage_by_team")}
    assert list(rows) == ["interns", "platform"]
    platform = rows["platform"]
    assert platform["active_users"] == 2 and platform["sessions"] == 3  # ada, carol and one without a user
    assert platform["tokens"] == 11_420_000 and platform["priced_cost_usd"] == pytest.approx(8.7)
    assert (platform["lines_added"], platform["lines_removed"], platform["commits"]) == (120, 30, 2)
    assert platform["active_hours"] == 2.0
    assert rows["interns"]["priced_cost_usd"] == pytest.approx(9.375)
    assert rows["interns"]["cost_usd"] == pytest.approx(9.625) and platform["cost_usd"] == pytest.approx(8.7)


def test_usage_by_department_and_cost_center(lake: duckdb.DuckDBPyConnection) -> None:
    departments = {r["department"]: r["tokens"] for r in run(lake, "usage_by_department")}
    assert departments == {"research": 610_000, "engineering": 11_420_000}
    centers = {r["cost_center"]: r["active_users"] for r in run(lake, "usage_by_cost_center")}
    assert centers == {"CC-200": 1, "CC-100": 2}


def test_session_analysis(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["user_key"]: r for r in run(lake, "session_analysis")}
    assert rows["ada@example.com"]["avg_session_minutes"] == 1.9  # 09:00:05 to 09:02:00
    assert rows["ada@example.com"]["avg_requests"] == 4 and rows["ada@example.com"]["errors"] == 1
    assert rows["bob@example.com"]["avg_session_minutes"] == 41.0  # across midnight into the new year
    assert rows["u-carol"]["avg_session_minutes"] == 0.5


def test_cost_per_user_and_model(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {(r["user_key"], r["model"]): r for r in run(lake, "cost_per_user_and_model")}
    ada = rows[("ada@example.com", "claude-sonnet-4-5")]
    assert (ada["input_usd"], ada["output_usd"], ada["cache_read_usd"]) == pytest.approx((3.6, 1.8, 3.0))
    assert ada["priced"] is True
    mystery = rows[("bob@example.com", "claude-mystery-9")]
    assert mystery["priced_cost_usd"] is None and mystery["priced"] is False


def test_requests_per_minute_and_peak_count_api_requests(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["day"]: r for r in run(lake, "requests_per_minute_and_peak")}
    assert list(rows) == ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]
    day = rows["2026-12-30"]
    assert (day["requests"], day["active_minutes"], day["avg_requests_per_active_minute"]) == (4, 2, 2.0)
    assert (day["peak_requests_per_minute"], day["peak_minute"]) == (3, "09:00")


def test_monthly_cost_per_user_crosses_the_year(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {(r["month"], r["user_key"]): r for r in run(lake, "monthly_cost_per_user")}
    assert set(rows) == {
        ("2026-12", "ada@example.com"),
        ("2026-12", "bob@example.com"),
        ("2027-01", "ada@example.com"),
        ("2027-01", "bob@example.com"),
        ("2027-01", "u-carol"),
    }  # October is outside the three months; December is not lost in January
    assert rows[("2026-12", "ada@example.com")]["priced_cost_usd"] == pytest.approx(7.5)
    assert rows[("2026-12", "ada@example.com")]["reported_cost_usd"] == pytest.approx(7.4)
    assert rows[("2027-01", "ada@example.com")]["tokens"] == 220_000
    assert rows[("2026-12", "bob@example.com")]["priced_cost_usd"] == pytest.approx(9.375)
    assert rows[("2026-12", "bob@example.com")]["cost_usd"] == pytest.approx(9.375)
    assert rows[("2027-01", "bob@example.com")]["cost_usd"] == pytest.approx(0.25)
    assert rows[("2027-01", "bob@example.com")]["priced_cost_usd"] is None


def test_quota_tracking_applies_user_then_team_then_department_then_default(lake: duckdb.DuckDBPyConnection) -> None:
    rows = run(lake, "quota_tracking")
    assert [r["user_key"] for r in rows] == ["bob@example.com", "ada@example.com", "u-carol"]
    bob, ada, carol = rows
    assert bob["policy"] == "team interns"  # the team's policy wins over the research department's
    assert bob["month_tokens"] == 610_000 and bob["monthly_tokens_pct"] == 122.0  # 31 Dec 23:30 UTC is January here
    assert bob["month_usd"] == pytest.approx(9.625)  # as the quota monitor counts: the unpriced model's reported cost
    assert ada["policy"] == "user ada@example.com" and ada["monthly_usd_pct"] == 90.0
    assert ada["daily_tokens"] is None  # the user's own policy replaces the default as a whole
    assert carol["policy"] == "default"
    assert carol["monthly_usd_pct"] == 3.0 and carol["daily_tokens_pct"] == 10.0


def test_api_error_rate_by_model_and_status(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {(r["model"], r["status_code"]): r for r in run(lake, "api_error_rate_by_model_and_status")}
    assert rows[("claude-sonnet-4-5", "529")]["attempts"] == 6
    assert rows[("claude-sonnet-4-5", "529")]["error_rate_pct"] == 16.67
    assert rows[("claude-opus-4-1", "429")]["error_rate_pct"] == 33.33


def test_tool_success_rate_and_duration(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["tool_name"]: r for r in run(lake, "tool_success_rate_and_duration")}
    assert (rows["Bash"]["runs"], rows["Bash"]["success_rate_pct"], rows["Bash"]["avg_duration_ms"]) == (
        2,
        100.0,
        150.0,
    )
    assert (rows["Edit"]["success_rate_pct"], rows["Edit"]["max_duration_ms"]) == (0.0, 300.0)


def test_code_acceptance_by_language(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["language"]: r["acceptance_rate_pct"] for r in run(lake, "code_acceptance_by_language")}
    assert rows == {"Python": 75.0, "TypeScript": 100.0}


def test_developer_activity(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["user_key"]: r for r in run(lake, "developer_activity")}
    ada = rows["ada@example.com"]
    assert (ada["sessions"], ada["active_hours"], ada["pull_requests"], ada["edits_accepted"]) == (1, 1.5, 1, 5)
    assert rows["(unattributed)"]["sessions"] == 1


def test_data_quality_counts_rows_without_attribution(lake: duckdb.DuckDBPyConnection) -> None:
    rows = run(lake, "data_quality")
    metrics = {r["day"]: r for r in rows if r["source"] == "metrics"}
    assert "2026-10-20" not in metrics
    assert metrics["2027-01-01"]["rows_without_user"] == 1 and metrics["2027-01-01"]["unpriced_token_rows"] == 1
    assert metrics["2027-01-02"]["rows_without_email"] == 3  # carol's three rows: user id only
    assert sum(r["rows_without_user"] for r in rows if r["source"] == "events") == 0


def test_client_versions(lake: duckdb.DuckDBPyConnection) -> None:
    rows = {r["app_version"]: r["users"] for r in run(lake, "client_versions")}
    assert rows == {"2.0.14": 2, "2.0.10": 1}
