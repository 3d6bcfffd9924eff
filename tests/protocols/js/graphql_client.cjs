"use strict";
// The graphql-ws 6 client (on ws, non-lazy: one connection) against ws://HOST:PORT/graphql.
// normal: connection_init/ack, a query `hello(name: "node")`, a subscription
// `countdown(from: 3)` to its complete, stay --hold s, dispose (Close 1000).
// Operation ids are graphql-ws's default random UUIDs; --fixed-ids uses 1, 2, ...
// --keepalive pings the server every second (graphql-ws ping/pong), --hold then 3.5 s.
// different: another name and countdown(from: 2). quit-early: disposes after the query.
const WebSocket = require("ws");
const { createClient } = require("graphql-ws");
const { Flow, clientArgs, signal } = require("./common.cjs");

const args = clientArgs(null);
const keepalive = args.flags.has("keepalive");
const fixedIds = args.flags.has("fixed-ids");
if (args.hold === null) args.hold = keepalive ? 3.5 : 0.5;
const name = "graphql-ws" + (keepalive ? " keepalive" : "") + (fixedIds ? " fixed-ids" : "");
const flow = new Flow(name, args.variant);
let client = null;

flow.run(
  async (f) => {
    let nextId = 0;
    let pongs = 0;
    const closed = signal();
    let leaving = false;
    const options = {
      url: args.url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      keepAlive: keepalive ? 1000 : 0,
      onNonLazyError: (e) => f.fail("connection error: " + (e && e.message ? e.message : describe(e))),
      on: {
        connected: () => f.event("connected"),
        pong: (received) => {
          if (received) pongs++;
        },
        closed: (e) => {
          f.event({ closed: describe(e) });
          closed.set();
          if (!leaving) f.fail("closed: " + JSON.stringify(describe(e)));
        },
      },
    };
    if (fixedIds) options.generateID = () => String(++nextId);
    client = createClient(options);
    const who = args.variant === "different" ? "someone else" : "node";
    const hello = `{ hello(name: ${JSON.stringify(who)}) }`;
    const query = await f.guard("query", only(client.iterate({ query: hello })));
    f.event({ query: query });
    if (args.variant === "quit-early") {
      leaving = true;
      await f.guard("dispose", client.dispose());
      f.event("quit early");
      return;
    }
    const from = args.variant === "different" ? 2 : 3;
    const countdown = `subscription { countdown(from: ${from}) }`;
    const values = (await f.guard("subscription", all(client.iterate({ query: countdown })))).map(
      (data) => data.countdown,
    );
    f.event({ subscription: values });
    await f.hold(args.hold * 1000);
    f.extra.pongs = pongs;
    if (keepalive && args.hold >= 2.5 && pongs < 2) throw new Error(`only ${pongs} pongs in ${args.hold} s`);
    leaving = true;
    await f.guard("dispose", client.dispose());
    await f.wait(closed, "closed");
  },
  args.timeout,
  () => client && client.dispose(),
);

// Every result until the server completes the operation. (Leaving the loop early would
// make the client send its own `complete`, or not, depending on whether the server's
// `complete` was already read: a flow that differs from run to run.)
async function all(iterator) {
  const data = [];
  for await (const result of iterator) {
    if (result.errors) throw new Error("graphql errors: " + JSON.stringify(result.errors));
    data.push(result.data);
  }
  return data;
}

async function only(iterator) {
  const data = await all(iterator);
  if (data.length !== 1) throw new Error(`a query with ${data.length} results`);
  return data[0];
}

function describe(e) {
  if (e && typeof e.code === "number") return { code: e.code, reason: String(e.reason || "") };
  return String(e);
}
