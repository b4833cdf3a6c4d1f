"""Screenshots of every custom widget of the dashboard, rendered by the real widget function from rollups the real
aggregator wrote (moto on 127.0.0.1) for a synthetic fleet, at the sizes the dashboard body gives them.

    make screenshots        # writes docs/images/widget-*.png and docs/images/dashboard.png

The fleet: 40 developers in 7 teams of 3 departments over 10 days (Wednesday 11 to Friday 20 November 2026, in
Europe/Berlin), working in two or three sittings a day on weekdays and a little on the weekend, on three
models, with API requests, a few API errors and tool runs; the quota monitor's latest run is written as it writes
it. The time is a fixed clock, never the wall clock, so the pictures are the same on every run.

Pixels: a CloudWatch dashboard is 24 grid units wide and fills the browser, so a unit is 1/24 of the dashboard's
width (UNIT_PX on a 1,920-pixel screen, NARROW_UNIT_PX on 1,366 pixels); a unit of height is taken as ROW_PX, and
the title bar and padding of a widget as TITLE_PX and PAD_PX. CloudWatch's documentation does not state these
numbers: the widget function does not rely on them, it lays out for the `width` and `height` CloudWatch sends.

Chromium runs headless on local files only, with networking and background services off
(`chromium_command`); the same page model measures overflow for the tests (`measure`).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from components.dashboard_body import CollectorHealth, DashboardBodySettings, dashboard_body
from lambda_src.common import rollups as keys
from lambda_src.dashboard_aggregator.handler import RollupStore, aggregate
from lambda_src.dashboard_widget.handler import RollupReader, render
from tests.clock import Clock
from tests.lambda_src.memory_table import MemoryTable
from tests.lambda_src.rollup_table import Deployed, create_table
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    arrival_of,
    claude_event,
    emf_event,
    logs_batch,
    subscription_event,
)

ZONE = "Europe/Berlin"
NOW = datetime(2026, 11, 20, 15, 40, tzinfo=UTC)  # Friday 16:40 in Berlin
DAYS = 10
UNIT_PX = 77  # 1,848 px of dashboard on a 1,920-px screen, / 24
NARROW_UNIT_PX = 54  # 1,300 px on a 1,366-px laptop screen
ROW_PX = 60
TITLE_PX = 34
PAD_PX = 10
DRILL_DOWN_USER = "tim.hopper@example.com"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "us.anthropic.claude-opus-4-5-20251101-v1:0"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
TEAMS = {  # team: (department, cost center, people)
    "platform": ("engineering", "CC-100", 8),
    "payments": ("engineering", "CC-110", 7),
    "search": ("engineering", "CC-120", 6),
    "mobile": ("engineering", "CC-130", 5),
    "security": ("engineering", "CC-140", 3),
    "data": ("data", "CC-200", 6),
    "support-tools": ("operations", "CC-300", 5),
}
FIRST = (
    "ada", "alan", "barbara", "brian", "claire", "dennis", "edsger", "frances", "grace", "guido", "hedy", "ivan",
    "joan", "ken", "linus", "lynn", "margaret", "niklaus", "radia", "rob", "sophie", "tim", "vint", "yukihiro",
)  # fmt: skip
LAST = ("lovelace", "kay", "liskov", "kernighan", "ritchie", "dijkstra", "allen", "hopper", "lamarr", "thompson")


# The fleet ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    developer: Developer
    intensity: float
    """Scale of the tokens of one active minute."""
    models: tuple[tuple[str, float], ...]
    start_hour: float


def people(count: int, rng: random.Random) -> list[Person]:
    slots = [team for team, (_, _, size) in TEAMS.items() for _ in range(size)]
    found = []
    for index in range(count):
        team = slots[index % len(slots)]
        department, cost_center, _ = TEAMS[team]
        name = f"{FIRST[index % len(FIRST)]}.{LAST[(index * 7) % len(LAST)]}"
        api_key_login = index % 19 == 18  # an API-key or Bedrock login: the installation hash, no email
        developer = Developer(
            email=None if api_key_login else f"{name}@example.com",
            user_id=f"u-{index:03d}",
            account_uuid=f"acc-{index:03d}",
            department=department,
            team=team,
            cost_center=cost_center,
            session=f"s-{index}",
            app_version=rng.choice(("2.0.14", "2.0.14", "2.0.14", "2.0.13", "2.0.10")),
        )
        heavy = rng.random()
        mix = (
            ((SONNET, 0.8), (OPUS, 0.15), (HAIKU, 0.05))
            if heavy < 0.7
            else ((SONNET, 0.45), (OPUS, 0.5), (HAIKU, 0.05))
        )
        found.append(Person(developer, 0.4 + 3.2 * heavy**2, mix, rng.uniform(8.0, 10.5)))
    return found


def minute_of_work(at: datetime, person: Person, rng: random.Random, first: bool) -> list[dict[str, Any]]:
    """What the client exports for one active minute: tokens of each type and cost on one model, active time,
    lines, now and then a commit or a pull request, edit decisions; a session on a sitting's first minute."""
    who = person.developer
    model = rng.choices([m for m, _ in person.models], [w for _, w in person.models])[0]
    scale = person.intensity * rng.uniform(0.3, 1.7)
    input_tokens, output, read, write = (round(n * scale) for n in (900, 420, 16_000, 1_400))
    price = {SONNET: (3, 15), OPUS: (5, 25), HAIKU: (1, 5)}[model]
    cost = (input_tokens * price[0] + output * price[1] + read * price[0] * 0.1 + write * price[0] * 1.25) / 1e6
    events = [
        emf_event(at, who, {"claude_code.token.usage": input_tokens}, model=model, type="input"),
        emf_event(at, who, {"claude_code.token.usage": output}, model=model, type="output"),
        emf_event(at, who, {"claude_code.token.usage": read}, model=model, type="cacheRead"),
        emf_event(at, who, {"claude_code.token.usage": write}, model=model, type="cacheCreation"),
        emf_event(at, who, {"claude_code.cost.usage": round(cost, 6)}, model=model),
        emf_event(at, who, {"claude_code.active_time.total": rng.uniform(20, 55)}),
        emf_event(at, who, {"claude_code.lines_of_code.count": rng.randint(0, 60)}, type="added"),
        emf_event(at, who, {"claude_code.lines_of_code.count": rng.randint(0, 20)}, type="removed"),
        emf_event(
            at, who, {"claude_code.code_edit_tool.decision": rng.randint(1, 3)}, tool_name="Edit", decision="accept"
        ),
    ]
    if first:
        events.append(emf_event(at, who, {"claude_code.session.count": 1}))
    if rng.random() < 0.04:
        events.append(emf_event(at, who, {"claude_code.commit.count": 1}))
    if rng.random() < 0.012:
        events.append(emf_event(at, who, {"claude_code.pull_request.count": 1}))
    if rng.random() < 0.08:
        events.append(
            emf_event(at, who, {"claude_code.code_edit_tool.decision": 1}, tool_name="Write", decision="reject")
        )
    return events


def events_of_minute(at: datetime, person: Person, rng: random.Random) -> list[dict[str, Any]]:
    """The events of the same minute: an API request or two, now and then an error, tool runs."""
    who = person.developer
    model = rng.choices([m for m, _ in person.models], [w for _, w in person.models])[0]
    found = []
    for _ in range(rng.randint(1, 2)):
        found.append(
            claude_event(
                at,
                who,
                "api_request",
                model=model,
                cost_usd=0.01,
                duration_ms=round(rng.lognormvariate(8.3 if model != HAIKU else 7.4, 0.7)),
                input_tokens=900,
                output_tokens=400,
                cache_read_tokens=16_000,
                cache_creation_tokens=1_400,
            )
        )
    if rng.random() < 0.025:
        status = rng.choices(("429", "529", "500", "400"), (5, 3, 1, 1))[0]
        found.append(claude_event(at, who, "api_error", model=model, status_code=status, duration_ms="120"))
    for _ in range(rng.randint(0, 3)):
        tool, success_rate = rng.choice(
            (("Bash", 0.88), ("Edit", 0.97), ("Read", 0.995), ("Grep", 0.99), ("Write", 0.96))
        )
        found.append(
            claude_event(
                at,
                who,
                "tool_result",
                tool_name=tool,
                success=str(rng.random() < success_rate).lower(),
                duration_ms="40",
            )
        )
    return found


def fleet_deliveries(
    count: int, days: int, now: datetime, zone: ZoneInfo, seed: int = 11
) -> Iterator[tuple[bytes, bytes]]:
    """(metrics delivery, events delivery) per hour of the fleet's work, oldest first, up to `now`."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible synthetic fleet
    fleet = people(count, rng)
    today = now.astimezone(zone).date()
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        weekend = day.weekday() >= 5
        minutes: dict[datetime, list[tuple[datetime, Person, bool]]] = {}
        for person in fleet:
            if weekend and rng.random() > 0.12:
                continue
            if not weekend and rng.random() < 0.06:  # off today
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(hours=person.start_hour)
            sittings = rng.randint(1, 2) if weekend else rng.randint(2, 3)
            for _ in range(sittings):
                length = rng.randint(4, 18) * 5
                for step in range(0, length, 5):
                    if rng.random() < 0.75:
                        at = start + timedelta(minutes=step + rng.randint(0, 4), seconds=rng.randint(0, 59))
                        hour = at.replace(minute=0, second=0, microsecond=0)
                        minutes.setdefault(hour, []).append((at, person, step == 0))
                start += timedelta(minutes=length + rng.randint(30, 150))
        for hour in sorted(minutes):
            work = [(at, p, first) for at, p, first in sorted(minutes[hour], key=lambda w: w[0]) if at <= now]
            if not work:
                continue
            metrics = [event for at, p, first in work for event in minute_of_work(at, p, rng, first)]
            events = [event for at, p, _ in work for event in events_of_minute(at, p, rng)]
            yield logs_batch(METRICS_LOG_GROUP, metrics), logs_batch(EVENTS_LOG_GROUP, events)


@dataclass(frozen=True)
class Rollups:
    """A rollup table in moto, as the widget function reads it."""

    dynamodb: Any
    table: str
    zone: ZoneInfo

    def reader(self) -> RollupReader:
        return RollupReader(self.dynamodb, self.table)


def fill_fleet(
    dynamodb: Any,
    table: str,
    zone: str = ZONE,
    count: int = 40,
    days: int = DAYS,
    now: datetime = NOW,
    extra: Sequence[bytes] = (),
) -> Rollups:
    """The fleet's telemetry through the real aggregator, then the quota monitor's list as it writes it, in a new
    table in moto. The aggregator runs on the in-memory table of its tests (moto takes about a second per
    transaction-heavy delivery), and the items it wrote are copied to moto, where the widgets read them."""
    create_table(dynamodb, table)
    clock = Clock(now - timedelta(days=days))
    memory = MemoryTable()
    store = RollupStore(memory, table, clock, pause=lambda _: None)
    settings = Deployed.settings_for(table, "queue", zone)
    quarantined: list[str] = []
    with contextlib.redirect_stdout(io.StringIO()):
        for deliveries in [*fleet_deliveries(count, days, now, ZoneInfo(zone)), tuple(extra)]:
            for payload in deliveries:
                clock.set(max(clock.now(), datetime.fromtimestamp(arrival_of(payload) / 1000, UTC)))
                aggregate(subscription_event(payload), settings, store, quarantined.extend, clock)
    assert not quarantined, quarantined[:3]
    items = [item for key, item in memory.items.items() if not key[0].startswith("LEDGER#")]
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        )
    rollups = Rollups(dynamodb, table, ZoneInfo(zone))
    write_near_quota(rollups, now)
    return rollups


NearEntry = tuple[str, str, float, float, float, float, str]
"""user, limit, used, quota, percent, projected percent, policy key"""


def write_near_quota(rollups: Rollups, now: datetime, entries: Sequence[NearEntry] | None = None) -> None:
    """QUOTA#<day> / NEAR in the shape the quota monitor writes (lambda_src/quota_monitor: near_quota_item)."""
    day = keys.local_day(now.timestamp(), rollups.zone)
    entries = (
        entries
        if entries is not None
        else [
            ("grace.hopper@example.com", "daily_usd", 31.7, 25, 126.8, 158.0, "team#support-tools"),
            ("linus.kernighan@example.com", "monthly_usd", 412.5, 400, 103.1, 141.0, "default"),
            (
                "ada.lovelace@example.com",
                "daily_tokens",
                4_650_000,
                5_000_000,
                93.0,
                118.0,
                "user#ada.lovelace@example.com",
            ),
            ("ken.allen@example.com", "monthly_usd", 355.0, 400, 88.8, 122.0, "default"),
            ("radia.dijkstra@example.com", "daily_usd", 21.4, 25, 85.6, 104.0, "team#support-tools"),
            ("joan.liskov@example.com", "monthly_tokens", 81_000_000, 100_000_000, 81.0, 109.0, "department#data"),
        ]
    )
    item = {
        "pk": {"S": keys.quota_pk(day)},
        "sk": {"S": keys.QUOTA_NEAR_SK},
        "entries": {
            "S": json.dumps(
                [
                    {
                        "user": user,
                        "limit": limit,
                        "used": used,
                        "quota": quota,
                        "percent": percent,
                        "projected_percent": projected,
                        "policy": policy,
                    }
                    for user, limit, used, quota, percent, projected, policy in entries
                ]
            )
        },
        "users_near": {"N": str(len(entries))},
        "users_over": {"N": "2"},
        "users_checked": {"N": "38"},
        "updated_at": {"S": (now - timedelta(minutes=7)).isoformat(timespec="seconds")},
    }
    rollups.dynamodb.put_item(TableName=rollups.table, Item=item)


# The widgets at their sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One custom widget of the dashboard body: its title, parameters and place in the grid."""

    title: str
    params: dict[str, Any]
    x: int
    y: int
    width: int
    height: int

    @property
    def name(self) -> str:
        extra = "-".join(str(v) for k, v in sorted(self.params.items()) if k != "widget" and k != "limit")
        return f"widget-{self.params['widget'].replace('_', '-')}" + (f"-{extra.replace('_', '-')}" if extra else "")

    def pixels(self, unit: int = UNIT_PX) -> tuple[int, int]:
        """The widget's content box in pixels: what CloudWatch sends as widgetContext.width and height."""
        return self.width * unit - 2 * PAD_PX, self.height * ROW_PX - TITLE_PX - PAD_PX


def body_settings(quota: bool = True) -> DashboardBodySettings:
    return DashboardBodySettings(
        region="eu-west-1",
        namespace="ClaudeCode",
        widget_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:ccm-dashboard-widget",
        aggregator_function_name="ccm-aggregator",
        widget_function_name="ccm-dashboard-widget",
        table_name="ccm-rollups",
        failed_queue_name="ccm-failed",
        metrics_log_group="/claude-code/metrics",
        events_log_group="/claude-code/events",
        subscription_filter_name="ccm-dashboard",
        collector=CollectorHealth("app/ccm/1", "targetgroup/ccm/1", "ccm", "collector"),
        quota=quota,
    )


def shots(quota: bool = True) -> list[Shot]:
    """Every custom widget of the dashboard body, in its order."""
    return [
        Shot(w["properties"]["title"], dict(w["properties"]["params"]), w["x"], w["y"], w["width"], w["height"])
        for w in dashboard_body(body_settings(quota))["widgets"]
        if w["type"] == "custom"
    ]


def widget_event(
    params: dict[str, Any], start: datetime, end: datetime, size: tuple[int, int], theme: str
) -> dict[str, Any]:
    """What CloudWatch sends a custom widget (see the widgetContext of the CloudWatch user guide)."""
    return {
        "widgetContext": {
            "dashboardName": "ccm-prod",
            "widgetId": "widget-1",
            "locale": "en",
            "timezone": {"label": "UTC", "offsetISO": "+00:00", "offsetInMinutes": 0},
            "period": 300,
            "isAutoPeriod": True,
            "timeRange": {
                "mode": "relative",
                "start": int(start.timestamp() * 1000),
                "end": int(end.timestamp() * 1000),
            },
            "theme": theme,
            "params": params,
            "width": size[0],
            "height": size[1],
        }
    }


def render_shot(
    rollups: Rollups, shot: Shot, size: tuple[int, int], theme: str = "light", hours: float = 24, now: datetime = NOW
) -> str:
    event = widget_event(shot.params, now - timedelta(hours=hours), now, size, theme)
    output = render(event, rollups.reader(), rollups.zone, now)
    assert isinstance(output, str)
    return output


# Pages and Chromium -----------------------------------------------------------------------------------------------

CONSOLE = {
    # What the CloudWatch console looks like around a widget, closely enough: its font stack, text, card and page.
    "light": {"text": "#16191f", "card": "#ffffff", "page": "#f2f3f3", "border": "#eaeded"},
    "dark": {"text": "#d1d5db", "card": "#0f1b2a", "page": "#0a1019", "border": "#414d5c"},
}


def page_html(frames: Sequence[tuple[str, int, int, int, int, str]], theme: str, measure: bool = False) -> str:
    """A page of widget frames (title, left, top, content width, content height, widget HTML) placed absolutely,
    styled like the console; with `measure`, a script (in this test page, never in a widget) records each
    content box's scroll sizes in a <pre id="measured">."""
    colours = CONSOLE[theme]
    cards = []
    for index, (title, left, top, width, height, content) in enumerate(frames):
        cards.append(
            f'<div class="card" style="left:{left}px;top:{top}px;width:{width + 2 * PAD_PX}px">'
            f'<div class="title">{html.escape(title)}</div>'
            f'<div class="box" id="box{index}" style="width:{width}px;height:{height}px">{content}</div></div>'
        )
    script = (
        "<pre id='measured'></pre><script>document.getElementById('measured').textContent=JSON.stringify("
        "[...document.querySelectorAll('.box')].map(b=>({id:b.id,sw:b.scrollWidth,cw:b.clientWidth,"
        "sh:b.scrollHeight,ch:b.clientHeight,injected:b.querySelectorAll('.pwned').length})));</script>"
        if measure
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        f"html,body{{margin:0;background:{colours['page']};color:{colours['text']};"
        "font-family:'Amazon Ember','Helvetica Neue',Roboto,Arial,sans-serif;font-size:14px}"
        f".card{{position:absolute;background:{colours['card']};border:1px solid {colours['border']};"
        f"border-radius:2px;padding:0 {PAD_PX}px {PAD_PX}px {PAD_PX}px}}"
        f".title{{height:{TITLE_PX}px;line-height:{TITLE_PX}px;font-weight:700;font-size:14px;white-space:nowrap;"
        "overflow:hidden;text-overflow:ellipsis}"
        ".box{overflow:auto}"
        "cwdb-action{display:none}"  # CloudWatch turns these into click handlers; they are never shown inline
        "</style></head><body>" + "".join(cards) + script + "</body></html>"
    )


def chromium() -> str | None:
    """Debian's chromium (what `make chromium` installs), or the Chromium or Chrome a CI image brings."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def _environment() -> dict[str, str]:
    """The environment without a shifted clock: libfaketime (make pytest-shifted-clock) is not for Chromium."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME", "FAKETIME_NO_CACHE")}


def chromium_command(binary: str, profile: str, *arguments: str) -> list[str]:
    """Headless Chromium that loads only the local page: no background networking, updates, sync or first-run
    pages, every host name unresolvable, a throwaway profile."""
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        *arguments,
    ]


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="widget-pages-") as folder:
        yield Path(folder)


def screenshot(binary: str, page: str, out: Path, size: tuple[int, int]) -> None:
    with _scratch() as folder:
        (folder / "page.html").write_text(page, encoding="utf-8")
        subprocess.run(
            chromium_command(
                binary,
                str(folder / "profile"),
                f"--window-size={size[0]},{size[1]}",
                "--hide-scrollbars",
                f"--screenshot={out}",
                (folder / "page.html").as_uri(),
            ),
            check=True,
            capture_output=True,
            timeout=120,
            env=_environment(),
        )


def measure(binary: str, page: str) -> list[dict[str, Any]]:
    """Each content box's scroll and client sizes, and the elements of class `pwned` inside it, as laid out."""
    with _scratch() as folder:
        (folder / "page.html").write_text(page, encoding="utf-8")
        done = subprocess.run(
            chromium_command(
                binary,
                str(folder / "profile"),
                "--window-size=2400,4000",
                "--dump-dom",
                (folder / "page.html").as_uri(),
            ),
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            env=_environment(),
        )
    start = done.stdout.index('<pre id="measured">') + len('<pre id="measured">')
    return list(json.loads(html.unescape(done.stdout[start : done.stdout.index("</pre>", start)])))


# make screenshots -----------------------------------------------------------------------------------------------


def stacked_frames(
    items: Sequence[tuple[str, tuple[int, int], str]], gap: int = 12
) -> tuple[list[Any], tuple[int, int]]:
    """Frames one below the other, and the window that holds them."""
    frames, top, widest = [], gap, 0
    for title, (width, height), content in items:
        frames.append((title, gap, top, width, height, content))
        top += TITLE_PX + height + PAD_PX + 2 + gap
        widest = max(widest, width + 2 * PAD_PX + 2 + 2 * gap)
    return frames, (widest, top)


def write_screenshots(rollups: Rollups, out: Path, binary: str, log: Callable[[str], None] = print) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    every = shots()
    for shot in every:
        size = shot.pixels()
        variants = [("", 24, "light")]
        if (
            shot.params["widget"] in ("active_users", "cost", "tokens", "api_errors")
            or shot.params.get("dimension") == "team"
        ):
            variants.append(("-10-days", 24 * DAYS, "light"))
        if shot.params["widget"] in ("cost", "top_users") and shot.params.get("period") != "month":
            variants.append(("-dark", 24, "dark"))
        for suffix, hours, theme in variants:
            content = render_shot(rollups, shot, size, theme, hours)
            frames, window = stacked_frames([(shot.title, size, content)])
            path = out / f"{shot.name}{suffix}.png"
            screenshot(binary, page_html(frames, theme), path, window)
            written.append(path)
            log(f"wrote {path.relative_to(out.parent.parent) if out.parent.parent in path.parents else path}")
    drill_down = Shot(
        "Usage of one user (drill-down: the user parameter)", {"widget": "user", "user": DRILL_DOWN_USER}, 0, 0, 12, 6
    )
    for suffix, hours in (("", 24), ("-10-days", 24 * DAYS)):
        size = drill_down.pixels()
        frames, window = stacked_frames([(drill_down.title, size, render_shot(rollups, drill_down, size, hours=hours))])
        path = out / f"widget-user{suffix}.png"
        screenshot(binary, page_html(frames, "light"), path, window)
        written.append(path)
        log(f"wrote {path}")
    path = out / "dashboard.png"
    screenshot(binary, overview_page(rollups), path, (24 * UNIT_PX, overview_rows() * ROW_PX))
    written.append(path)
    log(f"wrote {path}")
    return written


def overview_rows() -> int:
    """Rows of the first sections, overview and users, down to the Productivity heading (dashboard.png)."""
    widgets = dashboard_body(body_settings())["widgets"]
    return next(w["y"] for w in widgets if w["type"] == "text" and "Productivity" in w["properties"]["markdown"])


def overview_page(rollups: Rollups) -> str:
    """The first rows of the dashboard as the body places them: custom widgets rendered, native graphs as
    labelled placeholders (CloudWatch draws those itself), section titles as text."""
    frames = []
    headings = []
    rows = overview_rows()
    for widget in dashboard_body(body_settings())["widgets"]:
        if widget["y"] + widget["height"] > rows:
            continue
        left, top = widget["x"] * UNIT_PX + 4, widget["y"] * ROW_PX + 4
        shot = Shot("", {}, widget["x"], widget["y"], widget["width"], widget["height"])
        size = (shot.pixels()[0] - 8, shot.pixels()[1] - 8)
        properties = widget["properties"]
        if widget["type"] == "text":
            headings.append(
                f'<div style="position:absolute;left:{left + 6}px;top:{top + 14}px;font-size:18px;font-weight:700">'
                f"{html.escape(properties['markdown'].lstrip('# '))}</div>"
            )
        elif widget["type"] == "custom":
            custom = Shot(
                properties["title"], dict(properties["params"]), *(widget[k] for k in ("x", "y", "width", "height"))
            )
            frames.append((custom.title, left, top, size[0], size[1], render_shot(rollups, custom, size)))
        else:
            frames.append(
                (
                    properties["title"],
                    left,
                    top,
                    size[0],
                    size[1],
                    '<div style="height:100%;display:flex;align-items:center;justify-content:center;opacity:.45">'
                    "CloudWatch metric graph (drawn by CloudWatch, not rendered here)</div>",
                )
            )
    page = page_html(frames, "light")
    return page.replace("</body>", "".join(headings) + "</body>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=IMAGES)
    parser.add_argument("--users", type=int, default=40)
    options = parser.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("chromium is missing: `make screenshots` installs it (apt-get install chromium)")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()

        dynamodb = boto3.client(
            "dynamodb",
            region_name="eu-west-1",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        print(f"aggregating {options.users} users over {DAYS} days ...", flush=True)
        rollups = fill_fleet(dynamodb, "rollups-screenshots", count=options.users)
        write_screenshots(rollups, options.out, binary)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
