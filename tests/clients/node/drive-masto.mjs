// Drives masto (masto.js, the library Elk and Phanpy are built on), unmodified from npm, for the
// client tests.
//
// Usage: node drive-masto.mjs BASE_URL
// The same line protocol as drive.mjs (lines.mjs): one JSON request a line on stdin, {"op",
// "args"}, and one JSON answer a line on stdout.
//
// masto's calls are chains of names (masto.v1.statuses.$select(id).source.fetch()); here a chain
// is a JSON list whose strings are names and whose {"$select": id} objects are $select calls.
// Ops: "oauth" (a chain on the OAuth client, as masto's createOAuthAPIClient makes it), "use" (a
// REST client with that access token from now on), "call" (a chain on the REST client, called with
// the rest of the args; "$raw" as the chain's last name gives the response's headers too),
// "pages" (a list chain read as masto's paginator reads it, following Link, up to args[1] pages),
// "media" (v2.media.create with the bytes of a file as a Blob, as a browser's file input gives
// it, and masto's own wait for processing), "listen" (the streaming client, the streaming URL taken
// from the instance as Elk does, subscribed to args[0]; its events are kept), "heard" (the events
// kept so far, waiting up to args[1] ms for args[0] of them), "hush" (the streaming client closed).
import { readFileSync } from "node:fs";

import { createOAuthAPIClient, createRestAPIClient, createStreamingAPIClient, MastoHttpError } from "masto";
import WebSocket from "ws";

import { serve } from "./lines.mjs";

// masto 8 asks for Node.js 22; on 20 its WebSocket code lacks only what 22 has built in: a global
// WebSocket (the npm ws, which Node's is compatible with) and this ES2024 helper.
globalThis.WebSocket ??= WebSocket;
Promise.withResolvers ??= function withResolvers() {
  let resolve, reject;
  const promise = new Promise((yes, no) => { resolve = yes; reject = no; });
  return { promise, resolve, reject };
};

const base = process.argv[2];
let rest = createRestAPIClient({ url: base });
let token = undefined;
let streaming = undefined;
let heard = [];

function follow(root, chain) {
  let target = root;
  for (const part of chain) {
    target = typeof part === "string" ? target[part] : target.$select(part.$select);
  }
  return target;
}

function headersOf(found) {
  return found?.headers ? Object.fromEntries(found.headers.entries()) : {};
}

async function listen(stream, params) {
  const instance = await rest.v2.instance.fetch();
  streaming = createStreamingAPIClient({
    streamingApiUrl: instance.configuration.urls.streaming, accessToken: token, implementation: WebSocket,
    retry: false,
  });
  const subscription = follow(streaming, stream.split(".")).subscribe(params);
  (async () => {
    try {
      for await (const event of subscription) heard.push({ event: event.event, payload: event.payload });
    } catch (err) {
      heard.push({ event: "error", payload: String(err?.message ?? err) });
    }
  })();
  return { data: instance.configuration.urls.streaming };
}

async function wait(count, ms) {
  const until = Date.now() + ms;
  while (heard.length < count && Date.now() < until) await new Promise((done) => setTimeout(done, 50));
  const found = heard;
  heard = [];
  return { data: found };
}

async function run(op, args) {
  switch (op) {
    case "oauth":
      return { data: await follow(createOAuthAPIClient({ url: base }), args[0])(...args.slice(1)) };
    case "use":
      token = args[0];
      rest = createRestAPIClient({ url: base, accessToken: token });
      return { data: null };
    case "call": {
      const found = await follow(rest, args[0])(...args.slice(1));
      return args[0].at(-1) === "$raw" ? { headers: headersOf(found), data: found.data } : { data: found };
    }
    case "pages": {
      const pages = [];
      for await (const page of follow(rest, args[0])(...args.slice(2))) {
        pages.push(page);
        if (pages.length >= args[1]) break;
      }
      return { data: pages };
    }
    case "media":
      return { data: await rest.v2.media.create({ ...args[1], file: new Blob([readFileSync(args[0])]) }) };
    case "listen":
      return await listen(args[0], args[1]);
    case "heard":
      return await wait(args[0], args[1]);
    case "hush":
      streaming?.close();
      streaming = undefined;
      return { data: null };
    default:
      throw new Error(`no such op: ${op}`);
  }
}

await serve(run, (err) => err instanceof MastoHttpError
  ? { status: err.statusCode, data: { error: err.message, description: err.description, details: err.details } }
  : {});
