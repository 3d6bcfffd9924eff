"use strict";
// An rpc-websockets 10 server (JSON-RPC 2.0) on 127.0.0.1 port 0, namespace "/".
// Methods: sum(a, b), echo(...), log(...) (the client notifies it), startTicks({count})
// which emits the `tick` event (rpc.on subscribers get {"notification": "tick", ...})
// count times, every 200 ms. Prints {"ready": true, "port": N}.
const { Server } = require("rpc-websockets");
const { ready, stopOnSignal, sleep } = require("./common.cjs");

const server = new Server({ host: "127.0.0.1", port: 0 });
server.register("sum", (params) => params.reduce((a, b) => a + b, 0));
server.register("echo", (params) => params);
server.register("log", () => true);
server.register("startTicks", (params) => {
  const count = params.count;
  (async () => {
    for (let i = 1; i <= count; i++) {
      await sleep(200);
      server.emit("tick", { n: i });
    }
  })();
  return { ticks: count };
});
server.event("tick");
server.on("listening", () => ready(server.wss.address().port));
stopOnSignal(() => server.close());
