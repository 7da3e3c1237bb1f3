'use strict';
// Serve one Node.js function (no npm packages needed).
//
//   node server.js --source DIR [--handler ./hello.js] [--max-log-bytes N] [--max-output-bytes N] [--processes N]
//       [--request-fd 3 --response-fd 4 | --http [--port 8080] [--cpu-seconds S] | --check] [--concurrency N]
//
// Pipe mode (default) is how the local runtime drives warm workers: newline-delimited JSON requests
// `{"id": 7, "context": …, "payload": …}` on the request fd; `{"ready": …}` then one
// `{"id": 7, "answer": <envelope>}` per request on the response fd, in completion order: up to
// --concurrency calls run at once (the platform never sends more), each with its own log capture.
// `--http` serves
// the §3.2 protocol on --port or $PORT (8080) for containers, on the address $HOST (default: every
// address), up to --concurrency calls at once, the others waiting their turn, each call allowed
// --cpu-seconds of CPU time when given. `--check` only validates the handler. A call's output
// over --max-output-bytes (JSON-encoded, default 6 MiB) is refused with a FunctionError naming the
// limit; a process the function cannot start for want of processes (--processes, the worker's
// RLIMIT_NPROC) fails with an error naming that limit.
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const readline = require('readline');
const { AsyncLocalStorage } = require('async_hooks');
const { Worker, isMainThread, workerData } = require('worker_threads');

const EXIT_AFTER_TIMEOUT = 70;
const TIMEOUT_MESSAGE = 'Function execution exceeded the timeout';

function parseArgs(argv) {
  const args = {
    source: '.', handler: '', maxLogBytes: 1 << 20, requestFd: 3, responseFd: 4, http: false, port: 0, check: false,
    concurrency: 1, cpuSeconds: 0, maxOutputBytes: 6 * 1024 * 1024, processes: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--source') args.source = value();
    else if (flag === '--handler') args.handler = value() || '';
    else if (flag === '--max-log-bytes') args.maxLogBytes = Number(value());
    else if (flag === '--max-output-bytes') args.maxOutputBytes = Number(value());
    else if (flag === '--processes') args.processes = Number(value());
    else if (flag === '--request-fd') args.requestFd = Number(value());
    else if (flag === '--response-fd') args.responseFd = Number(value());
    else if (flag === '--concurrency') args.concurrency = Number(value());
    else if (flag === '--cpu-seconds') args.cpuSeconds = Number(value());
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

let limits = { maxOutputBytes: 6 * 1024 * 1024, processes: 0 };

function describe(err) {
  const type = err instanceof TypeError || (err && err.name === 'TypeError') ? 'InputError' : 'FunctionError';
  let message = err instanceof Error ? err.message : err;
  if (limits.processes && err && err.code === 'EAGAIN' && /^spawn/.test(String(err.syscall))) {
    message = `Function exceeded its process limit of ${limits.processes} (processes and threads)`;
  }
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
    if (payloadJson.length > limits.maxOutputBytes && Buffer.byteLength(payloadJson) > limits.maxOutputBytes) {
      error = { type: 'FunctionError', message: `Function output exceeded its limit of ${limits.maxOutputBytes} bytes`,
        stacktrace: [] };
      payloadJson = 'null';
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

// ---- the watchdog (http mode)
// A call that keeps Node.js's only thread busy can be neither stopped nor timed on that thread: its
// deadline's timer never fires, no CPU time check runs and the calls beside it cannot end either. A
// thread of its own watches the calls in flight. Once one is past its deadline (and the grace its own
// timer had to answer) or has used its CPU time, the watchdog claims every call in flight, writes each
// its answer on its connection and kills the process; the container's supervisor starts a fresh one,
// as after any call past its limit.

const WATCH_MS = 50;
const GRACE_MS = 100;
const FREE = 0;
const RUNNING = 1;
const CLAIMED = 2;
const IN_FLIGHT = 0; // states[0]: how many calls run; states[1 + slot]: that slot's state

class Watchdog {
  constructor(slots, cpuSeconds) {
    this.states = new Int32Array(new SharedArrayBuffer(4 * (slots + 1)));
    this.values = new Float64Array(new SharedArrayBuffer(8 * 3 * slots)); // per slot: fd, deadline, CPU at start
    const watching = { states: this.states.buffer, values: this.values.buffer, cpuSeconds };
    this.thread = new Worker(__filename, { workerData: watching, stdout: false, stderr: false });
    this.thread.unref();
  }

  // Watch a call answering on `socket`; the slot to hand to finish().
  start(socket, deadline) {
    const slot = this.states.findIndex((state, index) => index > IN_FLIGHT && state === FREE) - 1;
    if (slot < 0) return -1; // more calls than slots cannot be: the limiter admits `slots` at once
    const fd = socket && socket._handle && typeof socket._handle.fd === 'number' ? socket._handle.fd : -1;
    this.values.set([fd, deadline === null ? 0 : deadline, cpuMicros()], 3 * slot);
    Atomics.store(this.states, 1 + slot, RUNNING);
    if (Atomics.add(this.states, IN_FLIGHT, 1) === 0) Atomics.notify(this.states, IN_FLIGHT);
    return slot;
  }

  // True when the call's answer is still this thread's to write, false when the watchdog wrote it.
  finish(slot) {
    if (slot < 0) return true;
    const owned = Atomics.compareExchange(this.states, 1 + slot, RUNNING, FREE) === RUNNING;
    if (owned) Atomics.sub(this.states, IN_FLIGHT, 1);
    return owned;
  }
}

function cpuMicros() {
  const used = process.cpuUsage();
  return used.user + used.system;
}

function watch({ states: statesBuffer, values: valuesBuffer, cpuSeconds }) {
  const states = new Int32Array(statesBuffer);
  const values = new Float64Array(valuesBuffer);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    Atomics.wait(states, IN_FLIGHT, 0); // idle: sleep until a call starts
    Atomics.wait(pause, 0, 0, WATCH_MS);
    for (let slot = 0; slot < states.length - 1; slot++) {
      if (Atomics.load(states, 1 + slot) !== RUNNING) continue;
      const [, deadline, cpuAtStart] = values.subarray(3 * slot, 3 * slot + 3);
      if (deadline && Date.now() > deadline + GRACE_MS) endAll(states, values, slot, TIMEOUT_MESSAGE, 'its timeout');
      else if (cpuSeconds && cpuMicros() - cpuAtStart >= cpuSeconds * 1e6) {
        endAll(states, values, slot, cpuMessage(cpuSeconds), 'its CPU time limit');
      }
    }
  }
}

// Answer the offending call and the calls beside it, then end the process; nothing when the offender
// ended meanwhile (its own thread answers it).
function endAll(states, values, offender, message, limit) {
  const claim = (slot) => Atomics.compareExchange(states, 1 + slot, RUNNING, CLAIMED) === RUNNING;
  if (!claim(offender)) return;
  try {
    answerOn(values[3 * offender], failure('FunctionError', message));
    const beside = failure('SystemError', 'the function process ended during the call: another run on the same'
      + ` function process exceeded ${limit}`);
    for (let slot = 0; slot < states.length - 1; slot++) {
      if (slot !== offender && claim(slot)) answerOn(values[3 * slot], beside);
    }
    fs.writeSync(2, `function process ending: a call keeps its thread busy past ${limit} (${message})\n`);
  } finally {
    process.kill(process.pid, 'SIGKILL');
  }
}

function cpuMessage(seconds) {
  return `Function exceeded its CPU time limit of ${seconds} s`;
}

function answerOn(fd, body) {
  if (fd < 0) return; // no descriptor to write on: the caller sees the connection close
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n'
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  try {
    writeAll(fd, head + body);
  } catch (err) {
    // the caller went away: nobody to answer
  }
}

// ---- http mode

async function runOverHttp(fn, problem, body, limit, watchdog, socket) {
  if (problem) return { body: failure('FunctionError', problem.error.message) };
  const request = parseRequest(body);
  if (request.error) return { body: request.error };
  const slot = watchdog.start(socket, request.deadline);
  const calling = call(fn, request, limit).then((answer) => ({ body: answer }));
  let timer;
  const overrun = request.deadline === null ? calling : new Promise((resolve) => {
    const timedOut = { body: failure('FunctionError', TIMEOUT_MESSAGE), exitCode: EXIT_AFTER_TIMEOUT };
    timer = setTimeout(() => resolve(timedOut), Math.max(0, request.deadline - Date.now()));
  });
  let answer;
  try {
    answer = await Promise.race([calling, overrun]);
  } finally {
    clearTimeout(timer);
    if (!watchdog.finish(slot)) answer = { answered: true }; // the watchdog wrote it
  }
  return answer;
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
  const watchdog = new Watchdog(Math.max(1, args.concurrency), args.cpuSeconds);
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
      const body = Buffer.concat(chunks).toString('utf8');
      const run = limit(() => runOverHttp(fn, problem, body, args.maxLogBytes, watchdog, req.socket));
      run.then((answer) => {
        if (answer.answered) return; // the watchdog answered it and ends the process
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
  if (!isMainThread) return watch(workerData);
  const args = parseArgs(process.argv.slice(2));
  limits = { maxOutputBytes: args.maxOutputBytes, processes: args.processes };
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
