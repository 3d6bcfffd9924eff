"use strict";
// npm socket.io-client (transports: ['websocket']) against a Socket.IO URL
// (http://127.0.0.1:PORT), the same flow as ../py/socketio_client.py:
// normal: connect, receive `welcome`, emit `hello` with an ack, receive `news`, stay
// connected --hold s (several server pings at pingInterval 1 s), disconnect.
// --binary adds an `upload` of bytes acked with its length and answered by `download`.
// different: emits `hola` with another payload. quit-early: disconnects after `welcome`.
const { io } = require("socket.io-client");
const { Flow, clientArgs, signal } = require("./common.cjs");

const args = clientArgs(3.5);
const binary = args.flags.has("binary");
const flow = new Flow("socket.io-client" + (binary ? " binary" : ""), args.variant);
let socket = null;

flow.run(
  async (f) => {
    const welcome = signal();
    const news = signal();
    const download = signal();
    let pings = 0;
    let leaving = false;
    socket = io(args.url, { transports: ["websocket"], reconnection: false, timeout: 10000 });
    socket.io.on("ping", () => pings++);
    socket.on("connect", () => f.event("connect"));
    socket.on("connect_error", (e) => f.fail("connect_error: " + e.message));
    socket.on("disconnect", (reason) => {
      f.event({ disconnect: reason });
      if (!leaving) f.fail("disconnected: " + reason);
    });
    socket.on("welcome", (data) => {
      f.event({ welcome: data });
      welcome.set();
    });
    socket.on("news", (data) => {
      f.event({ news: data });
      news.set();
    });
    socket.on("download", (data) => {
      f.event({ download: Array.from(data) });
      download.set();
    });
    await f.wait(welcome, "welcome");
    if (args.variant === "quit-early") {
      leaving = true;
      socket.disconnect();
      f.event("quit early");
      return;
    }
    const [event, payload] =
      args.variant === "different" ? ["hola", { name: "someone else" }] : ["hello", { name: "node" }];
    const ack = await f.guard("ack", socket.timeout(10000).emitWithAck(event, payload));
    f.event({ ack: ack });
    await f.wait(news, "news");
    if (binary) {
      const upload = Buffer.from([...Array(16).keys()]);
      const n = await f.guard("upload ack", socket.timeout(10000).emitWithAck("upload", upload));
      f.event({ "upload ack": n });
      await f.wait(download, "download");
    }
    await f.hold(args.hold * 1000);
    f.extra.pings = pings;
    checkPings(pings, args.hold, socket.io.engine._pingInterval / 1000);
    f.at("disconnect");
    leaving = true;
    socket.disconnect();
  },
  args.timeout,
  () => socket && socket.close(),
);

// Engine.IO v4: the server pings every pingInterval. Several while holding, and not a flood.
function checkPings(pings, hold, interval) {
  const expected = hold / interval;
  if (hold >= 2.5 && pings < 2) throw new Error(`only ${pings} server pings in ${hold} s`);
  if (pings > 2 * expected + 3) {
    throw new Error(`${pings} server pings in ${hold} s (pingInterval ${interval} s)`);
  }
}
