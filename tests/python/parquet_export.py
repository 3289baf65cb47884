#!/usr/bin/env python3
"""`leadflow export parquet` read back by DuckDB, an analyst's own engine (issue 11).

On a demo data set: the export's row counts equal the log's; the funnel counts DuckDB computes
from `leads.parquet` and `transitions.parquet` (the cohort, the leads that entered AwaitingSale
and NeedSatisfied, the losses by reason) equal the ones `leadflow audit funnel --mode any`
answers at the same position; and no contact name leaves: every personal field of every
registration reads `[erased]`.

Usage: python parquet_export.py [path/to/leadflow]   (default target/debug/leadflow; needs
       duckdb from requirements.txt). Prints one "ok: ..." line per check; exits 0 only if all
       pass.
"""
import json, os, subprocess, sys, tempfile

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AS_OF = "2026-12-01T00:00:00Z"


def leadflow(binary, *args):
    env = dict(os.environ, LEADFLOW_LOG="warn")
    env.pop("LEADFLOW_JWT_SECRET", None)
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        sys.exit(f"leadflow {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def check(what, got, expected):
    if got != expected:
        sys.exit(f"FAIL: {what}: got {got!r}, expected {expected!r}")
    print(f"ok: {what} ({got})")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/leadflow")
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "data"), os.path.join(tmp, "parquet")
        leadflow(binary, "demo", "--data-dir", data, "--leads", "150")
        audit = json.loads(leadflow(
            binary, "audit", "funnel", "--data-dir", data, "--from", "2026-01-01",
            "--to", "2027-01-01", "--as-of", AS_OF, "--mode", "any", "--format", "json",
            "--from-log"))
        leadflow(binary, "export", "parquet", "--data-dir", data, "--out", out)
        events, leads, moves = (os.path.join(out, f) for f in
                                ("events.parquet", "leads.parquet", "transitions.parquet"))
        db = duckdb.connect()
        one = lambda sql: db.sql(sql).fetchall()[0][0]

        check("every event of the log, once, in order",
              one(f"SELECT count(DISTINCT position) = max(position) AND min(position) = 1 "
                  f"FROM '{events}'"), True)
        check("the export stands at the audit's position",
              one(f"SELECT max(position) FROM '{events}'"), audit["position"])
        check("one leads row per registration",
              one(f"SELECT count(*) FROM '{leads}'"),
              one(f"SELECT count(*) FROM '{events}' WHERE event_type = 'LeadRegistered'"))

        group = audit["groups"][0]
        cohort = (f"SELECT lead FROM '{leads}' WHERE registered_at >= '2026-01-01' "
                  f"AND registered_at < '2027-01-01' AND registered_at <= '{AS_OF}'")
        check("the cohort DuckDB counts is the audit's",
              one(f"SELECT count(*) FROM ({cohort})"), group["registered"])
        entered = lambda stage: one(
            f"SELECT count(DISTINCT lead) FROM '{moves}' WHERE to_stage = '{stage}' "
            f"AND occurred_at <= '{AS_OF}' AND lead IN ({cohort})")
        steps = {s["step"]: s["reached"] for s in group["steps"]}
        check("leads that entered AwaitingSale", entered("AwaitingSale"), steps["AwaitingSale"])
        check("leads that entered NeedSatisfied", entered("NeedSatisfied"), steps["NeedSatisfied"])
        lost = db.sql(
            f"SELECT to_stage, reason, count(*) FROM ("
            f"  SELECT lead, arg_max(to_stage, position) AS to_stage, arg_max(reason, position) AS reason"
            f"  FROM '{moves}' WHERE occurred_at <= '{AS_OF}' AND lead IN ({cohort}) GROUP BY lead)"
            f" WHERE to_stage IN ('Disqualified', 'NeedAbsent') GROUP BY ALL ORDER BY ALL").fetchall()
        check("losses by stage and reason",
              [list(r) for r in lost],
              [[l["stage"], l["reason"], l["leads"]] for l in group["losses"]])

        check("no contact name leaves",
              one(f"SELECT count(*) FROM '{events}' WHERE event_type = 'LeadRegistered' AND "
                  f"json_extract_string(payload, '$.details.contactName') <> '[erased]'"), 0)
        check("no registration without its payload",
              one(f"SELECT count(*) FROM '{events}' WHERE event_type = 'LeadRegistered' "
                  f"AND payload IS NULL"), 0)


if __name__ == "__main__":
    main()
