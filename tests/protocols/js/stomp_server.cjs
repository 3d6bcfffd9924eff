"use strict";
// A stomp-broker-js 1.3 broker (its own ws 5) on an http server, path /stomp, 127.0.0.1
// port 0, configured with heart-beats [1000, 1000]. The broker never delivers a client's
// message to that client's own subscriptions, so the server side subscribes to
// `/queue.*` itself and answers every message with `echo: BODY` on `/topic.replies`.
// Prints {"ready": true, "port": N}.
const http = require("http");
const StompServer = require("stomp-broker-js");
const { ready, stopOnSignal } = require("./common.cjs");

const server = http.createServer();
const stomp = new StompServer({ server: server, path: "/stomp", heartbeat: [1000, 1000] });
stomp.subscribe("/queue.*", (body, headers) => {
  stomp.send("/topic.replies", { "in-reply-to": headers.destination }, "echo: " + body);
});
server.listen(0, "127.0.0.1", () => ready(server.address().port));
stopOnSignal(() => new Promise((resolve) => {
  server.close(() => resolve());
  setTimeout(resolve, 500).unref();
}));
