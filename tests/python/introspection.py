#!/usr/bin/env python3
"""The standard introspection query of graphql-core 3.3, against `leadflow serve`.

A client-side proof that the server answers the query that Python GraphQL clients (gql,
Strawberry's and Ariadne's tooling) send, built here by graphql-core itself
(`get_introspection_query` with every option the server can answer), without any token; that the
schema rebuilt from the answer (`build_client_schema`) is the checked-in
`schemas/graphql/schema.graphql`, compared as schemas (both printed by graphql-core in
canonical, lexicographically sorted form); and that a query one `ofType` level deeper than the
standard one is still refused.

Usage: python introspection.py [path/to/leadflow]   (default target/debug/leadflow, relative to
       the repository root; needs graphql-core from requirements.txt)
Prints one "ok: ..." line per check; exits 0 only if every check passes.
"""
import difflib, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import traceback, urllib.error, urllib.request
from dataclasses import replace

import graphql
from graphql import (
    FieldNode, FragmentDefinitionNode, GraphQLSchema, InlineFragmentNode, OperationDefinitionNode,
    build_client_schema, build_schema, get_introspection_query, is_introspection_type,
    is_specified_scalar_type, lexicographic_sort_schema, parse, print_ast, print_schema, print_type,
    validate)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDL_PATH = os.path.join(ROOT, "schemas", "graphql", "schema.graphql")
HEALTH_WAIT = 60    # seconds: the server's start, up to a 200 from /health
CALL_TIMEOUT = 20   # seconds: each GraphQL request
WATCHDOG = 180      # seconds: the whole run, so a hang can never go unnoticed

# Every option of graphql-core 3.3's get_introspection_query that async-graphql 7.2 can answer.
# Left off: `experimental_directive_deprecation` asks for `__schema { directives(includeDeprecated:
# true) }` and `__Directive.isDeprecated` / `deprecationReason`, which async-graphql's `__Schema` /
# `__Directive` do not have (the query would fail validation). `type_depth` keeps its default
# (9 `ofType` levels), the depth every graphql-core 3.3 client sends.
OPTIONS = dict(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
    one_of=True,  # `__Type.isOneOf`: async-graphql 7.2 has it
)

failures = []


def check(name, cond, detail=""):
    print(("ok: " if cond else "FAIL: ") + name + ("" if cond else f"\n    {detail}"), flush=True)
    if not cond:
        failures.append(name)
    return cond


def short(value, n=600):
    s = value if isinstance(value, str) else json.dumps(value)
    return s if len(s) <= n else s[:n] + "..."


def start_server(binary, data_dir, started):
    """Starts `leadflow serve`, waits for a 200 from /health; `started` gets the process at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(data_dir, "serve.log"), "w+")
    # A LEADFLOW_* variable of the caller (store, node, demo, listen) must not change the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_") or k == "LEADFLOW_LOG"}
    proc = subprocess.Popen([binary, "serve", "--data-dir", os.path.join(data_dir, "data"),
                             "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    started.append((proc, log))
    deadline = time.monotonic() + HEALTH_WAIT
    last = "no answer"
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port, log
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:300]!r}"
        except OSError as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET /health did not answer 200 within {HEALTH_WAIT} s (last: {last})")
        time.sleep(0.2)


def stop_server(proc):
    """SIGINT (a clean shutdown, as Ctrl-C), then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_query(port, query, operation_name):
    body = json.dumps({"query": query, "operationName": operation_name}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})  # no Authorization
    try:
        with urllib.request.urlopen(req, timeout=CALL_TIMEOUT) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return status, text, parsed


def query_depth(doc):
    """The field depth of an operation, fragments inlined and leaf fields counted, as
    async-graphql's `limit_depth` counts it."""
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}

    def depth(selection_set):
        best = 0
        for s in selection_set.selections if selection_set else ():
            if isinstance(s, FieldNode):
                best = max(best, 1 + depth(s.selection_set))
            elif isinstance(s, InlineFragmentNode):
                best = max(best, depth(s.selection_set))
            else:
                best = max(best, depth(fragments[s.name.value].selection_set))
        return best

    return max(depth(d.selection_set) for d in doc.definitions
               if isinstance(d, OperationDefinitionNode))


def deepen_type_ref(query):
    """The same query with one more `ofType { ... }` level at the bottom of the TypeRef
    fragment: the innermost `ofType` gets a copy of itself as its last selection. (graphql-core
    3.3's AST nodes are frozen dataclasses: the path down to it is rebuilt with `replace`.)"""

    def deepen(node):
        selections = tuple(node.selection_set.selections) if node.selection_set else ()
        at = next((i for i, s in enumerate(selections)
                   if isinstance(s, FieldNode) and s.name.value == "ofType"), None)
        if at is None:
            # the innermost ofType: append a copy of itself (nodes are immutable, so sharing is fine)
            return replace(node, selection_set=replace(node.selection_set, selections=(*selections, node))), 0
        child, levels = deepen(selections[at])
        new = (*selections[:at], child, *selections[at + 1:])
        return replace(node, selection_set=replace(node.selection_set, selections=new)), levels + 1

    doc = parse(query, no_location=True)
    at = next((i for i, d in enumerate(doc.definitions)
               if isinstance(d, FragmentDefinitionNode) and d.name.value == "TypeRef"), None)
    if at is None:
        raise RuntimeError("the generated query has no TypeRef fragment")
    fragment, levels = deepen(doc.definitions[at])
    if levels == 0:
        raise RuntimeError("the TypeRef fragment has no ofType")
    definitions = (*doc.definitions[:at], fragment, *doc.definitions[at + 1:])
    return replace(doc, definitions=definitions), levels


def own_types(schema):
    """The types (neither introspection types nor built-in scalars) that print_schema prints."""
    return {name: t for name, t in schema.type_map.items()
            if not is_introspection_type(t) and not is_specified_scalar_type(t)}


def diff_excerpt(a, b, max_lines=60):
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "schemas/graphql/schema.graphql",
                                      "introspection", n=3, lineterm=""))
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... {len(lines) - max_lines} more diff lines"]
    return "\n".join("    " + line for line in lines)


def compare_schemas(client_schema, sdl_schema):
    # async-graphql 7.2 answers `__schema { description }` with a fixed text (the description of
    # the `__Schema` type itself), which its SDL export never prints: not a property of our
    # schema, so the schema description stays out of the comparison (it is shown, and the query
    # asks for it).
    if client_schema.description != sdl_schema.description:
        def show(d):
            return json.dumps(d if d is None or len(d) <= 100 else d[:100] + "...")
        print(f"note: __schema.description is {show(client_schema.description)}, the SDL file has "
              f"{show(sdl_schema.description)}; left out of the comparison", flush=True)
        client_schema = GraphQLSchema(**{**client_schema.to_kwargs(), "description": None})
    server = lexicographic_sort_schema(client_schema)
    file = lexicographic_sort_schema(sdl_schema)
    server_types, file_types = own_types(server), own_types(file)
    names = sorted(set(server_types) | set(file_types))
    print(f"types compared: {len(names)} ({len(server_types)} introspected, {len(file_types)} in "
          "schema.graphql; built-in scalars and introspection types aside), directives: "
          + " ".join(f"@{d.name}" for d in server.directives), flush=True)
    only_server = [n for n in names if n not in file_types]
    only_file = [n for n in names if n not in server_types]
    differ = [n for n in names if n in server_types and n in file_types
              and print_type(server_types[n]) != print_type(file_types[n])]
    check("same type names in the introspected schema and schema.graphql",
          not only_server and not only_file,
          f"only introspected: {only_server}; only in schema.graphql: {only_file}")
    a, b = print_schema(file), print_schema(server)
    check("introspected schema == schemas/graphql/schema.graphql (print_schema after "
          f"lexicographic_sort_schema, {len(names)} types)", a == b,
          f"types that differ: {differ}\n" + diff_excerpt(a, b))


def run(port):
    query = get_introspection_query(**OPTIONS)
    doc = parse(query)
    with open(SDL_PATH, encoding="utf-8") as f:
        sdl_schema = build_schema(f.read())
    options = ", ".join(f"{k}={v}" for k, v in OPTIONS.items())
    print(f"query: graphql-core {graphql.__version__} get_introspection_query({options}), "
          f"depth {query_depth(doc)} (fields, leaves included)", flush=True)

    # --- the standard query, no token
    status, text, body = post_query(port, query, "IntrospectionQuery")
    check("introspection query: HTTP 200", status == 200, f"HTTP {status}: {short(text)}")
    check("introspection query: no errors", isinstance(body, dict) and not body.get("errors"),
          short(body.get("errors") if isinstance(body, dict) else text))
    data = body.get("data") if isinstance(body, dict) else None
    if check("introspection query: data.__schema present",
             isinstance(data, dict) and bool(data.get("__schema")), short(text)):
        try:
            client_schema = build_client_schema(data)
        except Exception as e:  # noqa: BLE001
            check("build_client_schema accepts the answer", False, f"{type(e).__name__}: {e}")
        else:
            check("build_client_schema accepts the answer", True)
            compare_schemas(client_schema, sdl_schema)

    # --- one level deeper: still refused
    deeper, levels = deepen_type_ref(query)
    name = (f"deeper query (TypeRef with {levels + 1} ofType levels instead of {levels}, "
            f"depth {query_depth(deeper)})")
    invalid = validate(sdl_schema, deeper)
    check(f"{name} is valid against the schema, so a refusal is the server's limit",
          not invalid, "; ".join(e.message for e in invalid))
    status, text, body = post_query(port, print_ast(deeper), "IntrospectionQuery")
    errors = body.get("errors") if isinstance(body, dict) else None
    check(f"{name} is refused: errors, no data",
          isinstance(errors, list) and len(errors) > 0 and body.get("data") is None,
          f"HTTP {status}: {short(text)}")
    if isinstance(errors, list) and errors:
        print(f"    (HTTP {status}, " + ", ".join(json.dumps(e.get("message")) for e in errors) + ")")
        check(f"{name} is refused for its depth",
              any(re.search(r"deep|depth", str(e.get("message", "")), re.I) for e in errors),
              short(errors))


def main():
    binary = (os.path.abspath(sys.argv[1]) if len(sys.argv) > 1
              else os.path.join(ROOT, "target", "debug", "leadflow"))
    data_dir = tempfile.mkdtemp(prefix="leadflow-introspection-")
    started = []  # (process, log) as soon as it is spawned, so that every way out can kill it

    def kill_now():
        for proc, _ in started:
            if proc.poll() is None:
                proc.kill()

    def watchdog():
        print(f"FAIL: watchdog, run exceeded {WATCHDOG} s", flush=True)
        kill_now()
        shutil.rmtree(data_dir, ignore_errors=True)
        os._exit(3)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    timer = threading.Timer(WATCHDOG, watchdog)
    timer.daemon = True
    timer.start()
    try:
        try:
            proc, port, log = start_server(binary, data_dir, started)
        except (OSError, RuntimeError) as exc:
            print(f"FAIL: could not start {binary} serve: {exc}", flush=True)
            sys.exit(2)
        print(f"serve pid {proc.pid} on 127.0.0.1:{port}", flush=True)
        try:
            run(port)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            check("run to completion", False, f"{type(exc).__name__}: {exc}")
        finally:
            stop_server(proc)
            if failures:
                log.seek(0)
                print("--- server output ---\n" + log.read() + "--- end server output ---")
    except KeyboardInterrupt as exc:
        print(f"FAIL: interrupted ({exc or 'SIGINT'})", flush=True)
        sys.exit(130)
    finally:
        timer.cancel()
        kill_now()
        for proc, log in started:
            proc.wait()
            log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
