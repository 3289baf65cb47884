#!/usr/bin/env python3
"""Smoke test of `leadflow node` driven by the official Python client, kurrentdbclient.

It proves that an independent implementation of the EventStoreDB/KurrentDB gRPC protocol
(which parses the server's error texts, unlike the Rust client) can: append with every
expected-version mode (through both Append and BatchAppend), get the right error types
back, read streams and `$all` forwards/backwards with limits, round-trip ids, types, data,
metadata and content types, retry idempotently, subscribe to `$all` with filters (catch-up
and live), soft-delete and undelete a stream, and tombstone one.

Usage: python smoke_kurrentdb.py [path/to/leadflow]   (default target/release/leadflow)
Prints one "ok: ..." line per check; exits 0 only if every check passes.
"""
import datetime, json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time, traceback, uuid

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import (
    KurrentDBClientError, NotFoundError, StreamIsDeletedError, WrongCurrentVersionError)

CALL_TIMEOUT = 10   # seconds: gRPC deadline of every call and subscription
WATCHDOG = 180      # seconds: the whole run, so a hang can never go unnoticed
failures = []


def check(name, cond, detail=""):
    print(("ok: " if cond else "FAIL: ") + name + ("" if cond else f"\n    {detail}"), flush=True)
    if not cond:
        failures.append(name)


def raises(name, exc_type, fn, text=None):
    try:
        result = fn()
    except exc_type as e:
        check(name, text is None or text in str(e), f"message {str(e)!r} lacks {text!r}")
        return e
    except Exception as e:  # noqa: BLE001
        check(name, False, f"expected {exc_type.__name__}, got {type(e).__name__}: {e}")
    else:
        check(name, False, f"expected {exc_type.__name__}, call returned {result!r}")


def ev(type_, body, meta=None, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return NewEvent(type=type_, data=data, content_type=content_type,
                    metadata=json.dumps(meta or {"by": "smoke"}).encode())


def collect(sub, n):
    """Take exactly n events from a subscription (its gRPC deadline bounds the wait)."""
    got = []
    for e in sub:
        got.append(e)
        if len(got) == n:
            break
    return got


def start_node(binary, data_dir):
    with socket.socket() as s:
        port = s.bind(("127.0.0.1", 0)) or s.getsockname()[1]
    log = open(os.path.join(data_dir, "node.log"), "w+")
    proc = subprocess.Popen([binary, "node", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", os.path.join(data_dir, "db")],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"node exited with {proc.returncode}:\n{log.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port, log
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"node did not listen on port {port} within 30 s") from None
            time.sleep(0.1)


def run(c, P):
    s1, s2, other = f"{P}-order-1", f"{P}-order-2", f"other{P}"
    # --- appends with every expected-version mode (single event: Append; list: BatchAppend)
    e = [ev("OrderPlaced", {"n": 0}), ev("LinePriced", {"n": 1, "q": "é"}),
         ev("LinePriced", {"n": 2}), ev("Blob", b"\x00\x01\xff", content_type="application/octet-stream"),
         ev("OrderClosed", {"n": 4}, meta={"corr": str(uuid.uuid4())})]
    p0 = c.append_to_stream(s1, current_version=StreamState.NO_STREAM, events=[e[0]])
    p1 = c.append_to_stream(s1, current_version=0, events=e[1])
    p3 = c.append_to_stream(s1, current_version=StreamState.ANY, events=[e[2], e[3]])
    p4 = c.append_to_stream(s1, current_version=StreamState.EXISTS, events=e[4])
    check("append NO_STREAM / exact 0 / ANY (2 events) / EXISTS succeed", True)
    check("commit positions increase", 0 < p0 < p1 < p3 < p4, f"{[p0, p1, p3, p4]}")
    check("current version is 4", c.get_current_version(s1) == 4, c.get_current_version(s1))
    in_all = {x.id: x for x in c.read_all(filter_include=[s1], filter_by_stream_name=True,
                                          timeout=CALL_TIMEOUT)}
    check("$all shows the 5 events", [x.id for x in e] == list(in_all), f"{list(in_all.values())}")
    want = {e[0].id: p0, e[1].id: p1, e[3].id: p3, e[4].id: p4}
    actual = {i: in_all[i].commit_position for i in want if i in in_all}
    check("append returns the $all commit position of its last event", actual == want,
          f"appends returned {want}, $all shows {actual}")
    check("commit == prepare in $all", all(x.commit_position == x.prepare_position for x in in_all.values()))

    # --- wrong expected versions and not-found
    x = raises("exact mismatch (BatchAppend) -> WrongCurrentVersionError", WrongCurrentVersionError,
               lambda: c.append_to_stream(s1, current_version=1, events=[ev("X", {})]))
    check("... reports actual version 4", x is not None and x.actual_version == 4, getattr(x, "actual_version", None))
    raises("exact mismatch (Append) -> WrongCurrentVersionError", WrongCurrentVersionError,
           lambda: c.append_to_stream(s1, current_version=7, events=ev("X", {})))
    raises("NO_STREAM on existing stream -> WrongCurrentVersionError", WrongCurrentVersionError,
           lambda: c.append_to_stream(s1, current_version=StreamState.NO_STREAM, events=[ev("X", {})]))
    x = raises("EXISTS on missing stream -> WrongCurrentVersionError", WrongCurrentVersionError,
               lambda: c.append_to_stream(f"{P}-missing", current_version=StreamState.EXISTS, events=ev("X", {})))
    check("... reports actual NO_STREAM", x is not None and x.actual_version == StreamState.NO_STREAM,
          getattr(x, "actual_version", None))
    raises("read missing stream -> NotFoundError", NotFoundError, lambda: c.get_stream(f"{P}-missing"))
    check("failed appends wrote nothing", c.get_current_version(s1) == 4)

    # --- reads
    got = c.get_stream(s1, timeout=CALL_TIMEOUT)
    check("forward read: ids, positions", [g.id for g in got] == [x.id for x in e]
          and [g.stream_position for g in got] == [0, 1, 2, 3, 4], got)
    check("round-trip of types, data (JSON and binary), metadata, stream name",
          [(g.type, g.data, g.metadata, g.stream_name) for g in got] ==
          [(x.type, x.data, x.metadata, s1) for x in e], got)
    check("round-trip of content types (application/json, application/octet-stream)",
          [g.content_type for g in got] == [x.content_type for x in e],
          f"wrote {[x.content_type for x in e]}, read {[g.content_type for g in got]}")
    check("JSON payloads decode", json.loads(got[1].data)["q"] == "é" and "corr" in json.loads(got[4].metadata))
    now = datetime.datetime.now(datetime.timezone.utc)
    check("recorded_at is now", all(g.recorded_at and abs((now - g.recorded_at).total_seconds()) < 300
                                    for g in got), [g.recorded_at for g in got])
    back = c.get_stream(s1, backwards=True)
    check("backward read", [g.stream_position for g in back] == [4, 3, 2, 1, 0], back)
    check("forward read with limit", [g.stream_position for g in c.get_stream(s1, limit=2)] == [0, 1])
    check("forward read from 2, limit 2",
          [g.stream_position for g in c.get_stream(s1, stream_position=2, limit=2)] == [2, 3])
    check("backward read from 3 (inclusive), limit 2",
          [g.stream_position for g in c.get_stream(s1, stream_position=3, backwards=True, limit=2)] == [3, 2])
    with c.read_stream(s1, limit=3) as it:
        check("read_stream iterator", [g.id for g in it] == [x.id for x in e[:3]])
    last2 = list(c.read_all(backwards=True, limit=2, filter_include=[f"{P}-.*"],
                            filter_by_stream_name=True, timeout=CALL_TIMEOUT))
    check("$all backwards, filtered, limit 2", [g.id for g in last2] == [e[4].id, e[3].id], last2)
    check("idempotent retry (Append, exact 0) returns original position",
          c.append_to_stream(s1, current_version=0, events=e[1]) == p1)
    check("idempotent retry (BatchAppend, exact 1) returns original position",
          c.append_to_stream(s1, current_version=1, events=[e[2], e[3]]) == p3)
    check("idempotent retry (NO_STREAM) returns original position",
          c.append_to_stream(s1, current_version=StreamState.NO_STREAM, events=[e[0]]) == p0)
    check("retries did not duplicate", len(c.get_stream(s1)) == 5 and c.get_current_version(s1) == 4)

    # --- subscriptions to $all with filters
    f = [ev("Shipped", {"n": i}) for i in range(2)]
    c.append_to_stream(s2, current_version=StreamState.NO_STREAM, events=f)
    c.append_to_stream(other, current_version=StreamState.ANY, events=[ev("Noise", {})])
    mine = [x.id for x in e + f]
    with c.subscribe_to_all(filter_include=[f"{P}-.*"], filter_by_stream_name=True,
                            timeout=CALL_TIMEOUT) as sub:
        got = collect(sub, len(mine))
        check("subscribe $all from start, stream regex filter: exactly my events in order",
              [g.id for g in got] == mine, [(g.stream_name, g.type) for g in got])
        live = ev("Delivered", {})
        c.append_to_stream(s2, current_version=1, events=live)
        nxt = collect(sub, 1)
        check("catch-up subscription receives an event appended after subscribing (and nothing else)",
              [g.id for g in nxt] == [live.id], [(g.stream_name, g.type) for g in nxt])
    with c.subscribe_to_all(filter_include=[s2], filter_by_stream_name=True, filter_by_prefix=True,
                            timeout=CALL_TIMEOUT) as sub:
        got = collect(sub, 3)
        check("subscribe $all, stream prefix filter", [g.id for g in got] == [x.id for x in f] + [live.id],
              [(g.stream_name, g.type) for g in got])
    with c.subscribe_to_all(commit_position=p1, filter_include=[f"{P}-.*"], filter_by_stream_name=True,
                            timeout=CALL_TIMEOUT) as sub:
        got = collect(sub, 1)
        check("subscribe $all from a position is exclusive", [g.id for g in got] == [e[2].id],
              [(g.stream_name, g.type, g.commit_position) for g in got])

    # --- caught-up and checkpoint messages say where and when (the newer streams.proto)
    last = list(c.read_all(backwards=True, limit=1, filter_exclude=(), timeout=CALL_TIMEOUT))[0]

    def until_caught_up(sub):
        got = []
        for g in sub:
            got.append(g)
            if g.is_caught_up:
                break
        return got

    with c.subscribe_to_all(filter_include=[f"{P}-.*"], filter_by_stream_name=True,
                            include_caught_up=True, include_checkpoints=True,
                            timeout=CALL_TIMEOUT) as sub:
        got = until_caught_up(sub)
    up = got[-1]
    check("$all caught-up carries the position it caught up at and the server's time",
          up.is_caught_up and up.commit_position == last.commit_position
          and up.recorded_at is not None,
          (up.commit_position, last.commit_position, up.recorded_at))
    checkpoints = [g for g in got if g.is_checkpoint]
    check("$all checkpoints carry their time",
          checkpoints and all(g.recorded_at is not None for g in checkpoints),
          [(g.commit_position, g.recorded_at) for g in checkpoints])
    with c.subscribe_to_stream(s2, include_caught_up=True, timeout=CALL_TIMEOUT) as sub:
        got = until_caught_up(sub)
    up = got[-1]
    check("stream caught-up carries the stream's last revision and the server's time",
          up.is_caught_up and up.stream_position == 2 and up.recorded_at is not None
          and [g.id for g in got[:-1]] == [x.id for x in f] + [live.id],
          (up.stream_position, up.recorded_at))

    # --- soft delete, undelete, tombstone
    sd, st = f"{P}-deleted", f"{P}-tombstoned"
    c.append_to_stream(sd, current_version=StreamState.NO_STREAM, events=[ev("A", {}), ev("B", {})])
    raises("delete with wrong version -> WrongCurrentVersionError", WrongCurrentVersionError,
           lambda: c.delete_stream(sd, current_version=0))
    raises("delete missing stream -> NotFoundError", NotFoundError,
           lambda: c.delete_stream(f"{P}-missing", current_version=StreamState.ANY))
    c.delete_stream(sd, current_version=1)
    raises("soft delete (exact 1), then read -> NotFoundError", NotFoundError, lambda: c.get_stream(sd))
    again = ev("C", {"undeleted": True})
    c.append_to_stream(sd, current_version=StreamState.ANY, events=[again])
    got = c.get_stream(sd)
    check("append after soft delete undeletes: only the new event, at revision 2",
          [(g.id, g.stream_position) for g in got] == [(again.id, 2)], got)
    c.append_to_stream(st, current_version=StreamState.NO_STREAM, events=[ev("A", {}), ev("B", {})])
    c.tombstone_stream(st, current_version=1)
    raises("tombstone (exact 1), then read -> StreamIsDeletedError", StreamIsDeletedError, lambda: c.get_stream(st))
    raises("append (BatchAppend) to tombstoned stream -> StreamIsDeletedError", StreamIsDeletedError,
           lambda: c.append_to_stream(st, current_version=1, events=[ev("C", {})]))
    raises("append (Append) to tombstoned stream -> error 'is deleted'", KurrentDBClientError,
           lambda: c.append_to_stream(st, current_version=StreamState.ANY, events=ev("C", {})), "is deleted")
    raises("delete tombstoned stream -> StreamIsDeletedError", StreamIsDeletedError,
           lambda: c.delete_stream(st, current_version=StreamState.ANY))
    raises("tombstone again -> StreamIsDeletedError", StreamIsDeletedError,
           lambda: c.tombstone_stream(st, current_version=StreamState.ANY))

    # --- default filter hides system events written by delete/tombstone
    end = ev("End", {})
    c.append_to_stream(f"{P}-end", current_version=StreamState.NO_STREAM, events=[end])
    raw = list(c.read_all(filter_exclude=(), timeout=CALL_TIMEOUT))
    check("unfiltered $all shows system events of delete/tombstone",
          {"$metadata", "$streamDeleted"} <= {g.type for g in raw}, sorted({g.type for g in raw}))
    seen = []
    with c.subscribe_to_all(timeout=CALL_TIMEOUT) as sub:  # default filter_exclude: system events
        for g in sub:
            seen.append(g)
            if g.id == end.id:
                break
    check("subscribe $all with default exclude filter: no system events, all mine in order",
          not any(g.type.startswith("$") for g in seen)
          and [g.id for g in seen] == [g.id for g in raw if not g.type.startswith("$")],
          [(g.stream_name, g.type) for g in seen])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/leadflow"
    data_dir = tempfile.mkdtemp(prefix="leadflow-smoke-")
    try:
        proc, port, log = start_node(binary, data_dir)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(data_dir, ignore_errors=True)
        sys.exit(f"FAIL: could not start {binary} node: {exc}")
    print(f"node pid {proc.pid} on 127.0.0.1:{port}", flush=True)

    def watchdog():
        print(f"FAIL: watchdog, run exceeded {WATCHDOG} s", flush=True)
        proc.kill(), os._exit(3)
    timer = threading.Timer(WATCHDOG, watchdog)
    timer.daemon = True
    timer.start()
    try:
        client = KurrentDBClient(f"kurrentdb://127.0.0.1:{port}?Tls=false")
        try:
            run(client, f"smoke{uuid.uuid4().hex[:8]}")
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            check("run to completion", False, f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
    finally:
        timer.cancel()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill(), proc.wait()
        if failures:
            log.seek(0)
            print("--- node output ---\n" + log.read() + "--- end node output ---")
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
