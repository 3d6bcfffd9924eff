"use strict";
// MQTT.js 5 over WebSocket (subprotocol mqtt) against ws://HOST:PORT/mqtt (mosquitto).
// normal: CONNECT (keepalive 1 s, clean session, MQTT.js's random client id), SUBSCRIBE
// wstape/echo at QoS 1, PUBLISH "hello" at QoS 1 to it, receive it back, stay --hold s
// (PINGREQ / PINGRESP every second), UNSUBSCRIBE, DISCONNECT (end).
// --fixed-ids: client id "wstape-mqttjs" and a UniqueMessageIdProvider (packet ids 1, 2,
// ...) instead of MQTT.js's random first packet id. --v5: MQTT 5 instead of 3.1.1.
// different: topic wstape/other, payload "other". quit-early: ends after the SUBACK.
const mqtt = require("mqtt");
const { Flow, clientArgs, signal } = require("./common.cjs");

const args = clientArgs(3.5);
const fixedIds = args.flags.has("fixed-ids");
const v5 = args.flags.has("v5");
const name = "mqtt.js" + (v5 ? " v5" : "") + (fixedIds ? " fixed-ids" : "");
const flow = new Flow(name, args.variant);
let client = null;

flow.run(
  async (f) => {
    const connected = signal();
    const message = signal();
    let leaving = false;
    let pingreqs = 0;
    let pingresps = 0;
    const options = {
      keepalive: 1,
      reconnectPeriod: 0,
      connectTimeout: 10000,
      clean: true,
      protocolVersion: v5 ? 5 : 4,
    };
    if (fixedIds) {
      options.clientId = "wstape-mqttjs";
      options.messageIdProvider = new mqtt.UniqueMessageIdProvider();
    }
    client = mqtt.connect(args.url, options);
    client.on("connect", (connack) => {
      f.event({ connack: { sessionPresent: connack.sessionPresent } });
      connected.set();
    });
    client.on("packetsend", (p) => {
      if (p.cmd === "pingreq") pingreqs++;
    });
    client.on("packetreceive", (p) => {
      if (p.cmd === "pingresp") pingresps++;
    });
    client.on("error", (e) => f.fail("error: " + e.message));
    client.on("close", () => {
      if (!leaving) f.fail("connection closed");
    });
    client.on("message", (topic, payload, packet) => {
      f.event({ message: { topic: topic, payload: payload.toString(), qos: packet.qos } });
      message.set();
    });
    await f.wait(connected, "connack");
    f.extra.clientId = client.options.clientId;
    const topic = args.variant === "different" ? "wstape/other" : "wstape/echo";
    const granted = await f.guard("subscribe", client.subscribeAsync(topic, { qos: 1 }));
    f.event({ suback: granted.map((g) => g.qos) });
    if (args.variant === "quit-early") {
      leaving = true;
      await f.guard("end", client.endAsync());
      f.event("quit early");
      return;
    }
    const payload = args.variant === "different" ? "other" : "hello";
    await f.guard("publish", client.publishAsync(topic, payload, { qos: 1 }));
    f.event("puback");
    await f.wait(message, "message");
    await f.hold(args.hold * 1000);
    f.extra.pings = { pingreq: pingreqs, pingresp: pingresps };
    if (args.hold >= 2.5 && pingresps < 2) throw new Error(`only ${pingresps} PINGRESPs in ${args.hold} s`);
    await f.guard("unsubscribe", client.unsubscribeAsync(topic));
    f.event("unsuback");
    leaving = true;
    await f.guard("end", client.endAsync());
    f.event("end");
  },
  args.timeout,
  () => client && client.end(true),
);
