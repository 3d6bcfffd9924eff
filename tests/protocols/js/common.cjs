"use strict";
// Shared by the Node.js protocol scripts (see tests/protocols/README.md).
// Servers print {"ready": true, "port": N} once listening on 127.0.0.1 port 0 and stop on
// SIGTERM / SIGINT. Clients take a URL and options and print one result line,
// {"ok", "client", "variant", "events", "error", "step", "seconds", ...}, exiting 0 only
// when their flow completed.

const VARIANTS = ["normal", "different", "quit-early"];

function ready(port) {
  process.stdout.write(JSON.stringify({ ready: true, port: port }) + "\n");
}

function stopOnSignal(stop) {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    Promise.resolve()
      .then(stop)
      .catch((e) => process.stderr.write(String((e && e.stack) || e) + "\n"))
      .finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

// argv: URL [--variant V] [--hold S] [--timeout S] [--FLAG ...]; flags are returned as a Set.
function clientArgs(defaultHold) {
  const argv = process.argv.slice(2);
  const args = { url: null, variant: "normal", hold: defaultHold, timeout: 20, flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--variant") args.variant = argv[++i];
    else if (a === "--hold") args.hold = Number(argv[++i]);
    else if (a === "--timeout") args.timeout = Number(argv[++i]);
    else if (a.startsWith("--")) args.flags.add(a.slice(2));
    else if (args.url === null) args.url = a;
    else throw new Error("unexpected argument " + a);
  }
  if (args.url === null) throw new Error("usage: URL [--variant V] [--hold S] [--timeout S]");
  if (!VARIANTS.includes(args.variant)) throw new Error("unknown variant " + args.variant);
  return args;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A one-shot signal that can be awaited: const s = signal(); s.set(value); await s.wait.
function signal() {
  let set;
  const wait = new Promise((resolve) => (set = resolve));
  const s = { isSet: false, value: undefined, wait };
  s.set = (value) => {
    if (!s.isSet) {
      s.isSet = true;
      s.value = value;
      set(value);
    }
  };
  return s;
}

class Flow {
  constructor(client, variant) {
    this.client = client;
    this.variant = variant;
    this.events = [];
    this.step = "start";
    this.extra = {};
    this.t0 = Date.now();
    this.failure = signal(); // set(error): the flow failed from a callback
  }
  event(what) {
    this.events.push(what);
  }
  at(step) {
    this.step = step;
  }
  fail(message) {
    this.failure.set(message);
  }
  // Await promise at step; a failure reported meanwhile (flow.fail) wins.
  async guard(step, promise) {
    this.at(step);
    const failed = this.failure.wait.then((m) => {
      throw new Error(m);
    });
    return Promise.race([promise, failed]);
  }
  async wait(sig, step) {
    return this.guard(step, sig.wait);
  }
  // Stay connected ms milliseconds; fails early if the connection goes.
  async hold(ms) {
    await this.guard("hold", sleep(ms));
  }
  result(error) {
    return Object.assign(
      {
        ok: error === null,
        client: this.client,
        variant: this.variant,
        events: this.events,
        error: error,
        step: this.step,
        seconds: (Date.now() - this.t0) / 1000,
      },
      this.extra,
    );
  }
  // Run body(flow) within timeout seconds; print the result line and exit.
  run(body, timeout, cleanup) {
    let error = null;
    const timer = new Promise((_, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out after ${timeout} s at step '${this.step}'`)),
        timeout * 1000,
      );
      t.unref();
    });
    Promise.race([Promise.resolve().then(() => body(this)), timer])
      .catch((e) => {
        error = e && e.message ? e.message : String(e);
        if (e && e.stack && !String(e.message).startsWith("timed out")) {
          process.stderr.write(e.stack + "\n");
        }
      })
      .then(() => (cleanup ? Promise.resolve().then(cleanup).catch(() => {}) : null))
      .finally(() => {
        process.stdout.write(JSON.stringify(this.result(error)) + "\n", () =>
          process.exit(error === null ? 0 : 1),
        );
      });
  }
}

module.exports = { VARIANTS, ready, stopOnSignal, clientArgs, sleep, signal, Flow };
