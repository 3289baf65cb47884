#!/usr/bin/env node
/**
 * The standard introspection query of graphql-js 16, against `leadflow serve`.
 *
 * A client-side proof that the server answers the query that graphql-js tools (GraphiQL,
 * codegen, IDE plugins) send, built here by graphql-js itself (`getIntrospectionQuery` with
 * every option the server can answer), without any token; that the schema rebuilt from the
 * answer (`buildClientSchema`) is the checked-in `schemas/graphql/schema.graphql`, compared as
 * schemas (both printed by graphql-js in canonical, lexicographically sorted form); and that a
 * query one `ofType` level deeper than the standard one is still refused.
 *
 * Usage: node tests/node/introspection.mjs [path/to/leadflow]   (default target/debug/leadflow,
 *        relative to the repository root; run `npm ci` in tests/node first)
 * Prints one "ok: ..." line per check; exits 0 only if every check passes.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  GraphQLSchema,
  Kind,
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  isIntrospectionType,
  isSpecifiedScalarType,
  lexicographicSortSchema,
  parse,
  print,
  printSchema,
  printType,
  validate,
  version,
} from 'graphql';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SDL_PATH = path.join(ROOT, 'schemas', 'graphql', 'schema.graphql');
const HEALTH_WAIT = 60; // seconds: the server's start, up to a 200 from /health
const CALL_TIMEOUT = 20; // seconds: each GraphQL request
const WATCHDOG = 180; // seconds: the whole run, so a hang can never go unnoticed

// Every option of graphql-js 16's getIntrospectionQuery that async-graphql 7.2 can answer.
// Left off: `experimentalDirectiveDeprecation` asks for `__schema { directives(includeDeprecated:
// true) }` and `__Directive.isDeprecated` / `deprecationReason`, which async-graphql's
// `__Schema` / `__Directive` do not have (the query would fail validation). `typeDepth` keeps its
// default (9 `ofType` levels), the depth every graphql-js 16 tool sends.
const OPTIONS = {
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true, // `__Type.isOneOf`: async-graphql 7.2 has it
};

const failures = [];
let child; // the server process, from its spawn on, so that every way out can kill it

function check(name, cond, detail = '') {
  console.log((cond ? 'ok: ' : 'FAIL: ') + name + (cond ? '' : `\n    ${detail}`));
  if (!cond) failures.push(name);
  return cond;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `leadflow serve` and waits for a 200 from /health; the caller stops it. */
async function startServer(binary, dataDir) {
  const port = await freePort();
  const logPath = path.join(dataDir, 'serve.log');
  const logFd = openSync(logPath, 'w');
  // A LEADFLOW_* variable of the caller (store, node, demo, listen) must not change the server.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('LEADFLOW_') || k === 'LEADFLOW_LOG'),
  );
  const proc = spawn(
    binary,
    ['serve', '--data-dir', path.join(dataDir, 'data'), '--listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', logFd, logFd], env },
  );
  closeSync(logFd);
  const server = { proc, port, logPath, exited: null };
  child = server;
  proc.on('exit', (code, signal) => (server.exited = { code, signal }));
  proc.on('error', (err) => (server.exited = { error: err }));
  const deadline = Date.now() + HEALTH_WAIT * 1000;
  let last = 'no answer';
  for (;;) {
    if (server.exited) {
      const how = server.exited.error ? server.exited.error.message
        : `exit code ${server.exited.code}, signal ${server.exited.signal}`;
      throw new Error(`the server stopped (${how}):\n${readLog(server)}`);
    }
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
      last = `HTTP ${r.status}: ${await r.text()}`;
      if (r.status === 200) return server;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    if (Date.now() > deadline) {
      throw new Error(`GET /health did not answer 200 within ${HEALTH_WAIT} s (last: ${last})`);
    }
    await sleep(200);
  }
}

function readLog(server) {
  try {
    return readFileSync(server.logPath, 'utf8');
  } catch {
    return '(no log)';
  }
}

/** SIGINT (a clean shutdown, as Ctrl-C), then SIGKILL after 10 s. */
async function stopServer(server) {
  if (!server || server.exited) return;
  const done = new Promise((r) => server.proc.once('exit', r));
  server.proc.kill('SIGINT');
  let timer;
  const stopped = await Promise.race([
    done.then(() => true),
    new Promise((r) => { timer = setTimeout(() => r(false), 10_000); }),
  ]);
  clearTimeout(timer);
  if (!stopped) {
    server.proc.kill('SIGKILL');
    await done;
  }
}

async function postQuery(port, query, operationName) {
  const r = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' }, // and no Authorization
    body: JSON.stringify({ query, operationName }),
    signal: AbortSignal.timeout(CALL_TIMEOUT * 1000),
  });
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: r.status, text, body };
}

const short = (v, n = 600) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > n ? `${s.slice(0, n)}...` : s;
};

/** The field depth of an operation, fragments inlined and leaf fields counted, as async-graphql's
 * `limit_depth` counts it. */
function queryDepth(doc) {
  const fragments = new Map(
    doc.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]),
  );
  const depth = (set) => Math.max(0, ...(set?.selections ?? []).map((s) => {
    if (s.kind === Kind.FIELD) return 1 + depth(s.selectionSet);
    if (s.kind === Kind.INLINE_FRAGMENT) return depth(s.selectionSet);
    return depth(fragments.get(s.name.value).selectionSet);
  }));
  return Math.max(...doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => depth(d.selectionSet)));
}

/** The same query with one more `ofType { ... }` level at the bottom of the TypeRef fragment:
 * the innermost `ofType` gets a copy of itself as its last selection. */
function deepenTypeRef(query) {
  const doc = structuredClone(parse(query, { noLocation: true }));
  const fragment = doc.definitions.find(
    (d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === 'TypeRef',
  );
  if (!fragment) throw new Error('the generated query has no TypeRef fragment');
  let innermost = fragment;
  let levels = 0;
  for (;;) {
    const next = innermost.selectionSet?.selections.find(
      (s) => s.kind === Kind.FIELD && s.name.value === 'ofType',
    );
    if (!next) break;
    innermost = next;
    levels += 1;
  }
  if (levels === 0) throw new Error('the TypeRef fragment has no ofType');
  innermost.selectionSet.selections.push(structuredClone(innermost));
  return { doc, levels };
}

/** The first differing region of two texts, with 3 lines of context: a unified-diff excerpt. */
function diffExcerpt(aName, a, bName, b, maxLines = 40) {
  const x = a.split('\n');
  const y = b.split('\n');
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start += 1;
  let endX = x.length;
  let endY = y.length;
  while (endX > start && endY > start && x[endX - 1] === y[endY - 1]) {
    endX -= 1;
    endY -= 1;
  }
  const from = Math.max(0, start - 3);
  const after = Math.min(3, x.length - endX);
  const out = [`--- ${aName}`, `+++ ${bName}`,
    `@@ -${from + 1},${endX - from + after} +${from + 1},${endY - from + after} @@`];
  for (let i = from; i < start; i += 1) out.push(`  ${x[i]}`);
  const minus = x.slice(start, endX);
  const plus = y.slice(start, endY);
  for (const l of minus.slice(0, maxLines)) out.push(`- ${l}`);
  if (minus.length > maxLines) out.push(`  ... ${minus.length - maxLines} more - lines`);
  for (const l of plus.slice(0, maxLines)) out.push(`+ ${l}`);
  if (plus.length > maxLines) out.push(`  ... ${plus.length - maxLines} more + lines`);
  for (let i = endX; i < endX + after; i += 1) out.push(`  ${x[i]}`);
  return out.map((l) => `    ${l}`).join('\n');
}

/** The types (neither introspection types nor built-in scalars) that printSchema prints. */
const ownTypes = (schema) => Object.values(schema.getTypeMap())
  .filter((t) => !isIntrospectionType(t) && !isSpecifiedScalarType(t));

function compareSchemas(clientSchema, sdlSchema) {
  // async-graphql 7.2 answers `__schema { description }` with a fixed text (the description of the
  // `__Schema` type itself), which its SDL export never prints: not a property of our schema, so
  // the schema description stays out of the comparison (it is shown, and the query asks for it).
  if ((clientSchema.description ?? null) !== (sdlSchema.description ?? null)) {
    const show = (d) => JSON.stringify(d == null || d.length <= 100 ? d ?? null : `${d.slice(0, 100)}...`);
    console.log(`note: __schema.description is ${show(clientSchema.description)}, the SDL file has `
      + `${show(sdlSchema.description)}; left out of the comparison`);
    clientSchema = new GraphQLSchema({ ...clientSchema.toConfig(), description: undefined });
  }
  const server = lexicographicSortSchema(clientSchema);
  const file = lexicographicSortSchema(sdlSchema);
  const serverTypes = new Map(ownTypes(server).map((t) => [t.name, t]));
  const fileTypes = new Map(ownTypes(file).map((t) => [t.name, t]));
  const names = [...new Set([...serverTypes.keys(), ...fileTypes.keys()])].sort();
  console.log(`types compared: ${names.length} (${serverTypes.size} introspected, ${fileTypes.size} `
    + 'in schema.graphql; built-in scalars and introspection types aside), directives: '
    + `${server.getDirectives().map((d) => `@${d.name}`).join(' ')}`);
  const onlyServer = names.filter((n) => !fileTypes.has(n));
  const onlyFile = names.filter((n) => !serverTypes.has(n));
  const differ = names.filter((n) => serverTypes.has(n) && fileTypes.has(n)
    && printType(serverTypes.get(n)) !== printType(fileTypes.get(n)));
  check('same type names in the introspected schema and schema.graphql',
    onlyServer.length === 0 && onlyFile.length === 0,
    `only introspected: [${onlyServer.join(', ')}]; only in schema.graphql: [${onlyFile.join(', ')}]`);
  const a = printSchema(file);
  const b = printSchema(server);
  check(`introspected schema == schemas/graphql/schema.graphql (printSchema after `
    + `lexicographicSortSchema, ${names.length} types)`, a === b,
    `types that differ: [${differ.join(', ')}]\n`
    + diffExcerpt('schemas/graphql/schema.graphql', a, 'introspection', b));
}

async function run(port) {
  const query = getIntrospectionQuery(OPTIONS);
  const doc = parse(query);
  const sdl = readFileSync(SDL_PATH, 'utf8');
  const sdlSchema = buildSchema(sdl);
  const what = `graphql-js ${version} getIntrospectionQuery(${JSON.stringify(OPTIONS)})`;
  console.log(`query: ${what}, depth ${queryDepth(doc)} (fields, leaves included)`);

  // --- the standard query, no token
  const res = await postQuery(port, query, 'IntrospectionQuery');
  check('introspection query: HTTP 200', res.status === 200, `HTTP ${res.status}: ${short(res.text)}`);
  check('introspection query: no errors', res.body !== undefined && !res.body.errors,
    short(res.body?.errors ?? res.text));
  const data = res.body?.data;
  if (check('introspection query: data.__schema present', !!data?.__schema, short(res.text))) {
    let clientSchema;
    try {
      clientSchema = buildClientSchema(data);
    } catch (e) {
      check('buildClientSchema accepts the answer', false, `${e.name}: ${e.message}`);
    }
    if (clientSchema) {
      check('buildClientSchema accepts the answer', true);
      compareSchemas(clientSchema, sdlSchema);
    }
  }

  // --- one level deeper: still refused
  const { doc: deeper, levels } = deepenTypeRef(query);
  const name = `deeper query (TypeRef with ${levels + 1} ofType levels instead of ${levels}, `
    + `depth ${queryDepth(deeper)})`;
  const invalid = validate(sdlSchema, deeper);
  check(`${name} is valid against the schema, so a refusal is the server's limit`,
    invalid.length === 0, invalid.map((e) => e.message).join('; '));
  const deep = await postQuery(port, print(deeper), 'IntrospectionQuery');
  const errors = deep.body?.errors;
  check(`${name} is refused: errors, no data`,
    Array.isArray(errors) && errors.length > 0 && (deep.body.data ?? null) === null,
    `HTTP ${deep.status}: ${short(deep.text)}`);
  if (Array.isArray(errors) && errors.length > 0) {
    console.log(`    (HTTP ${deep.status}, ${errors.map((e) => JSON.stringify(e.message)).join(', ')})`);
    check(`${name} is refused for its depth`, errors.some((e) => /deep|depth/i.test(e.message ?? '')),
      short(errors));
  }
}

async function main() {
  const binary = process.argv[2] ? path.resolve(process.argv[2])
    : path.join(ROOT, 'target', 'debug', 'leadflow');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'leadflow-introspection-'));
  let server;
  // Never leave a server behind: on the watchdog, Ctrl-C, or any exit.
  const killNow = () => {
    if (child && !child.exited) child.proc.kill('SIGKILL');
  };
  process.on('exit', () => {
    killNow();
    rmSync(dataDir, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      console.log(`FAIL: interrupted by ${sig}`);
      process.exit(130);
    });
  }
  const watchdog = setTimeout(() => {
    console.log(`FAIL: watchdog, run exceeded ${WATCHDOG} s`);
    process.exit(3);
  }, WATCHDOG * 1000);
  watchdog.unref();

  try {
    server = await startServer(binary, dataDir);
  } catch (e) {
    killNow();
    console.log(`FAIL: could not start ${binary} serve: ${e.message}`);
    process.exit(2);
  }
  console.log(`serve pid ${server.proc.pid} on 127.0.0.1:${server.port}`);
  try {
    await run(server.port);
  } catch (e) {
    console.log(e.stack);
    check('run to completion', false, `${e.name}: ${e.message}`);
  } finally {
    clearTimeout(watchdog);
    await stopServer(server);
    if (failures.length) console.log(`--- server output ---\n${readLog(server)}--- end server output ---`);
  }
  if (failures.length) {
    console.log(`${failures.length} check(s) failed: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log('all checks passed');
}

await main();
