'use strict';
// Serve one Node.js function (no npm packages needed).
//
//   node server.js --source DIR [--handler ./hello.js] [--max-log-bytes N]
//       [--request-fd 3 --response-fd 4 | --http [--port 8080] | --check] [--concurrency N]
//
// Pipe mode (default) is how the local runtime drives warm workers: newline-delimited JSON requests
// `{"id": 7, "context": …, "payload": …}` on the request fd; `{"ready": …}` then one
// `{"id": 7, "answer": <envelope>}` per request on the response fd, in completion order: up to
// --concurrency calls run at once (the platform never sends more), each with its own log capture.
// `--http` serves
// the §3.2 protocol on --port or $PORT (8080) for containers, on the address $HOST (default: every
// address), up to --concurrency calls at once, the others waiting their turn. `--check` only
// validates the handler.
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const readline = require('readline');
const { AsyncLocalStorage } = require('async_hooks');

const EXIT_AFTER_TIMEOUT = 70;

function parseArgs(argv) {
  const args = {
    source: '.', handler: '', maxLogBytes: 1 << 20, requestFd: 3, responseFd: 4, http: false, port: 0, check: false,
    concurrency: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--source') args.source = value();
    else if (flag === '--handler') args.handler = value() || '';
    else if (flag === '--max-log-bytes') args.maxLogBytes = Number(value());
    else if (flag === '--request-fd') args.requestFd = Number(value());
    else if (flag === '--response-fd') args.responseFd = Number(value());
    else if (flag === '--concurrency') args.concurrency = Number(value());
    else if (flag === '--port') { args.port = Number(value()); args.http = true; }
    else if (flag === '--http') args.http = true;
    else if (flag === '--check') args.check = true;
    else throw new Error(`unknown argument ${flag}`);
  }
  return args;
}

// ---- log capture: process.stdout/stderr.write (and so console.*) go to the running call's buffers:
// those of the call whose async context the write happens in (several calls may run at once), else of
// the one call running. Writes after a call ended go to the real streams.

class CapturedLines {
  constructor(limit) { this.limit = limit; this.room = limit; this.parts = []; this.dropped = 0; }

  write(chunk, encoding) {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString(encoding || 'utf8');
    const size = Buffer.byteLength(text, 'utf8');
    if (size <= this.room) {
      this.parts.push(text);
      this.room -= size;
    } else {
      const head = Buffer.from(text, 'utf8').subarray(0, this.room).toString('utf8').replace(/\uFFFD$/, '');
      this.parts.push(head);
      this.dropped += size - Buffer.byteLength(head, 'utf8');
      this.room = 0;
    }
  }

  text() { return this.parts.join(''); }

  lines() {
    const text = this.text();
    const lines = text ? text.split('\n') : [];
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    if (this.dropped) lines.push(`... log truncated: ${this.dropped} bytes over the ${this.limit}-byte limit`);
    return lines;
  }
}

let activeLogs = null; // the one call running, when calls run one at a time
let sharedCalls = false;
const callLogs = new AsyncLocalStorage();

function currentLogs() {
  const logs = callLogs.getStore() || activeLogs;
  return logs && !logs.done ? logs : null;
}

function installRouters() {
  for (const name of ['stdout', 'stderr']) {
    const stream = process[name];
    const realWrite = stream.write.bind(stream);
    stream.write = (chunk, encoding, callback) => {
      const logs = currentLogs();
      if (logs === null) return realWrite(chunk, encoding, callback);
      const done = typeof encoding === 'function' ? encoding : callback;
      logs[name].write(chunk, typeof encoding === 'string' ? encoding : undefined);
      if (typeof done === 'function') process.nextTick(done);
      return true;
    };
  }
  // process.exit() inside a call ends the worker: hand the call's output to the real streams first.
  process.on('exit', () => {
    const logs = currentLogs();
    if (logs === null) return;
    fs.writeSync(1, logs.stdout.text());
    fs.writeSync(2, logs.stderr.text());
  });
}

// ---- loading and checking the handler

class HandlerError extends Error {
  constructor(detail, stacktrace) {
    super(detail);
    this.error = {
      type: 'FunctionError', message: `Invalid function file or handler: ${detail}`, stacktrace: stacktrace || [],
    };
  }
}

function load(source, handler) {
  let file = handler;
  if (!file) {
    const isFile = (name) => fs.statSync(path.join(source, name)).isFile();
    const files = fs.readdirSync(source).filter((name) => name.endsWith('.js') && isFile(name)).sort();
    if (files.length !== 1) {
      const found = files.join(', ') || 'none';
      throw new HandlerError(`Exactly 1 source file needed when HANDLER is empty (found ${found})`);
    }
    file = `./${files[0]}`;
  }
  let exported;
  try {
    exported = require(path.resolve(source, file));
  } catch (err) {
    throw new HandlerError(`cannot load ${file}: ${err && err.message}`, stackLines(err));
  }
  if (typeof exported !== 'function') {
    throw new HandlerError(
      `${file} must export a function (module.exports = function (context, payload) {…}), it exports ${typeof exported}`);
  }
  return exported;
}

// ---- one call

function stackLines(err) {
  if (!(err instanceof Error) || !err.stack) return [];
  return String(err.stack).split('\n').filter((line) => !line.includes(__filename));
}

function describe(err) {
  const type = err instanceof TypeError || (err && err.name === 'TypeError') ? 'InputError' : 'FunctionError';
  let message = err instanceof Error ? err.message : err;
  if (typeof message !== 'string') message = JSON.stringify(message) ?? String(message);
  return { type, message, stacktrace: stackLines(err) };
}

function envelope(logs, error, payloadJson) {
  return `{"context":{"logs":${JSON.stringify(logs)},"error":${JSON.stringify(error)}},"payload":${payloadJson}}`;
}

function failure(type, message) {
  return envelope({ stdout: [], stderr: [] }, { type, message, stacktrace: [] }, 'null');
}

function parseRequest(body) {
  let request;
  try {
    request = JSON.parse(body);
  } catch (err) {
    return { error: failure('InputError', `Invalid Input: ${err.message}`) };
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    return { error: failure('InputError', 'Invalid Input: the body must be a JSON object with context and payload') };
  }
  const context = request.context && typeof request.context === 'object' ? request.context : {};
  const deadline = typeof context.deadline === 'string' ? Date.parse(context.deadline) : NaN;
  return {
    id: request.id === undefined ? null : request.id,
    context,
    payload: request.payload === undefined ? null : request.payload,
    deadline: Number.isNaN(deadline) ? null : deadline,
  };
}

async function call(fn, request, limit) {
  if (request.deadline !== null && request.deadline <= Date.now()) {
    return failure('FunctionError', 'Did not invoke, already exceeded timeout');
  }
  const logs = { stdout: new CapturedLines(limit), stderr: new CapturedLines(limit), done: false };
  if (!sharedCalls) activeLogs = logs;
  let result;
  let error = null;
  try {
    result = await callLogs.run(logs, () => fn(request.context, request.payload));
  } catch (err) {
    error = describe(err);
  } finally {
    logs.done = true;
    if (activeLogs === logs) activeLogs = null;
  }
  let payloadJson = 'null';
  if (error === null) {
    try {
      payloadJson = JSON.stringify(result === undefined ? null : result) ?? 'null';
    } catch (err) {
      error = { type: 'FunctionError', message: `result is not JSON serialisable: ${err.message}`, stacktrace: [] };
    }
  }
  return envelope({ stdout: logs.stdout.lines(), stderr: logs.stderr.lines() }, error, payloadJson);
}

// ---- pipe mode

function writeAll(fd, text) {
  const data = Buffer.from(text, 'utf8');
  for (let offset = 0; offset < data.length;) offset += fs.writeSync(fd, data, offset);
}

async function servePipe(fn, problem, args) {
  if (problem) {
    writeAll(args.responseFd, JSON.stringify({ ready: false, error: problem.error }) + '\n');
    process.exit(1);
  }
  writeAll(args.responseFd, '{"ready":true}\n');
  const input = new net.Socket({ fd: args.requestFd, readable: true, writable: false });
  const answer = (id, envelope) => writeAll(args.responseFd, `{"id":${JSON.stringify(id)},"answer":${envelope}}\n`);
  const running = new Set();
  sharedCalls = args.concurrency > 1;
  for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    const request = parseRequest(line);
    if (request.error) {
      answer(null, request.error);
      continue;
    }
    const calling = call(fn, request, args.maxLogBytes).then((envelope) => answer(request.id, envelope));
    if (args.concurrency <= 1) {
      await calling;
    } else {
      running.add(calling);
      calling.finally(() => running.delete(calling));
    }
  }
  await Promise.all(running);
  process.exit(0);
}

// ---- http mode

async function runOverHttp(fn, problem, body, limit) {
  if (problem) return { body: failure('FunctionError', problem.error.message) };
  const request = parseRequest(body);
  if (request.error) return { body: request.error };
  const calling = call(fn, request, limit).then((answer) => ({ body: answer }));
  if (request.deadline === null) return calling;
  let timer;
  const overrun = new Promise((resolve) => {
    const timedOut = { body: failure('FunctionError', 'Function execution exceeded the timeout'), exitCode: EXIT_AFTER_TIMEOUT };
    timer = setTimeout(() => resolve(timedOut), Math.max(0, request.deadline - Date.now()));
  });
  return Promise.race([calling, overrun]).finally(() => clearTimeout(timer));
}

// At most `slots` tasks at once; the others wait their turn, first come first served.
function limiter(slots) {
  let free = slots;
  const waiting = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return (task) => new Promise((resolve) => {
    const start = () => resolve(task().finally(release));
    if (free > 0) {
      free--;
      start();
    } else {
      waiting.push(start);
    }
  });
}

function serveHttp(fn, problem, args) {
  // --concurrency calls at once (default 1, like Dispatch's single worker per container)
  sharedCalls = args.concurrency > 1;
  const limit = limiter(Math.max(1, args.concurrency));
  const send = (res, status, body) => res
    .writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
    .end(body);
  const server = http.createServer((req, res) => {
    const route = req.url.split('?')[0];
    if (req.method === 'GET' && route === '/healthz') {
      return problem ? send(res, 500, JSON.stringify({ error: problem.error })) : send(res, 200, '{}');
    }
    if (req.method !== 'POST') return send(res, 404, '{"message":"not found"}');
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const run = limit(() => runOverHttp(fn, problem, Buffer.concat(chunks).toString('utf8'), args.maxLogBytes));
      run.then((answer) => {
        // A call still running past its deadline cannot be stopped: answer, then let a fresh process take over.
        if (answer.exitCode !== undefined) res.on('finish', () => process.exit(answer.exitCode));
        send(res, 200, answer.body);
      }, (err) => send(res, 200, failure('SystemError', String(err && err.message))));
    });
  });
  server.listen(args.port || Number(process.env.PORT) || 8080, process.env.HOST || undefined);
  const stop = () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 10000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  installRouters();
  const source = path.resolve(args.source);
  process.chdir(source);
  let fn = null;
  let problem = null;
  try {
    fn = load(source, args.handler);
  } catch (err) {
    problem = err instanceof HandlerError ? err : new HandlerError(String(err && err.message), stackLines(err));
  }
  if (args.check) {
    if (problem) fs.writeSync(2, JSON.stringify(problem.error) + '\n');
    process.exit(problem ? 1 : 0);
  }
  if (args.http) serveHttp(fn, problem, args);
  else servePipe(fn, problem, args);
}

main();
