"use strict";
// A graphql-ws 6 server on ws (subprotocol graphql-transport-ws), path /graphql,
// 127.0.0.1 port 0. Schema: `hello(name)` (query) and `countdown(from)` (a subscription
// yielding from..0, one value every 200 ms). Prints {"ready": true, "port": N}.
const { WebSocketServer } = require("ws");
const { useServer } = require("graphql-ws/use/ws");
const {
  GraphQLSchema, GraphQLObjectType, GraphQLString, GraphQLInt, GraphQLNonNull,
} = require("graphql");
const { ready, stopOnSignal, sleep } = require("./common.cjs");

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: "Query",
    fields: {
      hello: {
        type: GraphQLString,
        args: { name: { type: new GraphQLNonNull(GraphQLString) } },
        resolve: (_, { name }) => `hello, ${name}`,
      },
    },
  }),
  subscription: new GraphQLObjectType({
    name: "Subscription",
    fields: {
      countdown: {
        type: GraphQLInt,
        args: { from: { type: new GraphQLNonNull(GraphQLInt) } },
        subscribe: async function* (_, { from }) {
          for (let i = from; i >= 0; i--) {
            await sleep(200);
            yield { countdown: i };
          }
        },
      },
    },
  }),
});

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/graphql" });
const server = useServer({ schema }, wss);
wss.on("listening", () => ready(wss.address().port));
stopOnSignal(async () => {
  await server.dispose();
});
