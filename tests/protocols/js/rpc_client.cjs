"use strict";
// The rpc-websockets 10 client against ws://HOST:PORT/.
// normal: calls sum([1, 2]) and echo(["hi"]), notifies log(["hello"]), subscribes to the
// `tick` event (rpc.on), calls startTicks({count: 3}), receives 3 ticks, unsubscribes
// (rpc.off), stays --hold s, closes (1000). Request ids are UUIDs from
// generate_request_id; --int-ids keeps rpc-websockets' default incrementing integers.
// different: sum([2, 3]) and echo(["other"]). quit-early: closes after the first call.
const crypto = require("crypto");
const { Client } = require("rpc-websockets");
const { Flow, clientArgs, signal } = require("./common.cjs");

const args = clientArgs(0.5);
const intIds = args.flags.has("int-ids");
const flow = new Flow("rpc-websockets" + (intIds ? " int-ids" : ""), args.variant);
let ws = null;

flow.run(
  async (f) => {
    const opened = signal();
    const closed = signal();
    const ticks = [];
    const allTicks = signal();
    let leaving = false;
    const generate = intIds ? undefined : () => crypto.randomUUID();
    ws = new Client(args.url, { autoconnect: true, reconnect: false }, generate);
    ws.on("open", () => {
      f.event("open");
      opened.set();
    });
    ws.on("error", (e) => f.fail("error: " + (e && e.message ? e.message : String(e))));
    ws.on("close", (code, reason) => {
      f.event({ close: { code: code, reason: String(reason || "") } });
      closed.set();
      if (!leaving) f.fail(`closed: ${code}`);
    });
    await f.wait(opened, "open");
    const other = args.variant === "different";
    f.event({ sum: await f.guard("call sum", ws.call("sum", other ? [2, 3] : [1, 2], 10000)) });
    if (args.variant === "quit-early") {
      leaving = true;
      ws.close();
      f.event("quit early");
      await f.wait(closed, "close");
      return;
    }
    f.event({ echo: await f.guard("call echo", ws.call("echo", [other ? "other" : "hi"], 10000)) });
    await f.guard("notify", ws.notify("log", ["hello"]));
    ws.on("tick", (data) => {
      ticks.push(data.n);
      if (ticks.length === 3) allTicks.set();
    });
    f.event({ subscribe: await f.guard("subscribe", ws.subscribe("tick")) });
    const started = await f.guard("call startTicks", ws.call("startTicks", { count: 3 }, 10000));
    f.event({ startTicks: started });
    await f.wait(allTicks, "ticks");
    f.event({ ticks: ticks });
    f.event({ unsubscribe: await f.guard("unsubscribe", ws.unsubscribe("tick")) });
    await f.hold(args.hold * 1000);
    f.at("close");
    leaving = true;
    ws.close(1000, "bye");
    await f.wait(closed, "close");
  },
  args.timeout,
  () => ws && ws.close(),
);
