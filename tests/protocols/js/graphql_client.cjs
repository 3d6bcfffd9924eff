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
          if (!leaving) f.fail("closed: " + describe(e));
        },
      },
    };
    if (fixedIds) options.generateID = () => String(++nextId);
    client = createClient(options);
    const who = args.variant === "different" ? "someone else" : "node";
    f.at("query");
    const query = await first(client.iterate({ query: `{ hello(name: ${JSON.stringify(who)}) }` }));
    f.event({ query: query });
    if (args.variant === "quit-early") {
      leaving = true;
      await client.dispose();
      f.event("quit early");
      return;
    }
    f.at("subscription");
    const from = args.variant === "different" ? 2 : 3;
    const values = [];
    for await (const result of client.iterate({ query: `subscription { countdown(from: ${from}) }` })) {
      values.push(result.data.countdown);
    }
    f.event({ subscription: values });
    await f.hold(args.hold * 1000);
    f.extra.pongs = pongs;
    if (keepalive && args.hold >= 2.5 && pongs < 2) throw new Error(`only ${pongs} pongs in ${args.hold} s`);
    f.at("dispose");
    leaving = true;
    await client.dispose();
    await f.wait(closed, "closed");
  },
  args.timeout,
  () => client && client.dispose(),
);

async function first(iterator) {
  for await (const result of iterator) {
    if (result.errors) throw new Error("graphql errors: " + JSON.stringify(result.errors));
    return result.data;
  }
  throw new Error("query completed without a result");
}

function describe(e) {
  if (e && typeof e.code === "number") return { code: e.code, reason: String(e.reason || "") };
  return String(e);
}
