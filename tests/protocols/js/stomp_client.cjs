"use strict";
// @stomp/stompjs 7 (WebSocket from ws through webSocketFactory) against
// ws://HOST:PORT/stomp, heart-beats asked for both ways at 1000 ms.
// normal: CONNECT, subscribe /topic.replies, send "hello" to /queue.requests, receive the
// MESSAGE "echo: hello", stay --hold s, deactivate: DISCONNECT with a receipt, the broker's
// RECEIPT, then Close. (stomp-broker-js 1.3.0 never answers a SEND's receipt header: its
// middleware wrapper drops the callback that would send it; only DISCONNECT gets one.)
// stomp-broker-js grants heart-beats in one direction only, preferring client -> server:
// by default the client sends them (CONNECTED heart-beat 0,1000); --server-beats asks
// only for incoming ones (heartbeatOutgoing 0), so the broker sends them (1000,0) and the
// client checks them (it closes after 2 s without server activity).
// different: sends "other" to /queue.other. quit-early: deactivates after subscribing.
const WebSocket = require("ws");
const { Client } = require("@stomp/stompjs");
const { Flow, clientArgs, signal } = require("./common.cjs");

const args = clientArgs(3.5);
const serverBeats = args.flags.has("server-beats");
const flow = new Flow("stompjs" + (serverBeats ? " server-beats" : ""), args.variant);
let client = null;

flow.run(
  async (f) => {
    const connected = signal();
    const receipt = signal();
    const message = signal();
    const closed = signal();
    let leaving = false;
    let sent = 0;
    let received = 0;
    client = new Client({
      webSocketFactory: () => new WebSocket(args.url, ["v12.stomp", "v11.stomp", "v10.stomp"]),
      heartbeatIncoming: 1000,
      heartbeatOutgoing: serverBeats ? 0 : 1000,
      reconnectDelay: 0,
      debug: (line) => {
        if (line === ">>> PING") sent++;
        const receiptId = /^<<< RECEIPT\n(?:.*\n)*?receipt-id:([^\n]*)/.exec(line);
        if (receiptId) {
          f.event({ receipt: receiptId[1] });
          receipt.set();
        }
      },
      onConnect: (frame) => {
        f.event({
          connected: { version: frame.headers.version, "heart-beat": frame.headers["heart-beat"] },
        });
        connected.set();
      },
      onStompError: (frame) => f.fail("ERROR frame: " + frame.headers.message),
      onWebSocketClose: (e) => {
        f.event({ close: { code: e.code, reason: String(e.reason || "") } });
        closed.set();
        if (!leaving) f.fail(`socket closed: ${e.code}`);
      },
      onHeartbeatReceived: () => received++,
      onHeartbeatLost: () => f.event("heart-beat lost"),
    });
    client.activate();
    await f.wait(connected, "connected");
    f.extra.protocol = client.webSocket && client.webSocket.protocol;
    client.subscribe("/topic.replies", (msg) => {
      f.event({ message: msg.body, "in-reply-to": msg.headers["in-reply-to"] });
      message.set();
    });
    f.event("subscribed");
    if (args.variant === "quit-early") {
      leaving = true;
      await f.guard("deactivate", client.deactivate());
      f.event("quit early");
      return;
    }
    const other = args.variant === "different";
    client.publish({
      destination: other ? "/queue.other" : "/queue.requests",
      body: other ? "other" : "hello",
    });
    await f.wait(message, "message");
    await f.hold(args.hold * 1000);
    f.extra.heartbeats = { sent: sent, received: received };
    if (args.hold >= 2.5 && sent + received < 2) {
      throw new Error(`only ${sent + received} heart-beats in ${args.hold} s`);
    }
    leaving = true;
    await f.guard("deactivate", client.deactivate());
    await f.wait(receipt, "DISCONNECT receipt");
    await f.wait(closed, "close");
  },
  args.timeout,
  () => client && client.deactivate({ force: true }),
);
