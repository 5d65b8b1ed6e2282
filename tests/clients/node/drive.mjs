// Drives megalodon, an unmodified Mastodon client library from npm, for the client tests.
//
// Usage: node drive.mjs BASE_URL
// Reads one JSON request a line on stdin, {"op": NAME, "args": [...]}, runs it, and writes one
// JSON answer a line on stdout: {"ok": true, "status", "headers", "data"} or
// {"ok": false, "status", "data", "message"} when the call failed (lines.mjs).
//
// Ops: "detector" (megalodon's server-type detection through NodeInfo), "app" (registerApp: the
// app and its sign-in URL), "token" (fetchAccessToken with a code), "use" (a client with that
// access token from now on), "media" (uploadMedia with the bytes of a file given as a Buffer,
// so the library sends no content type of its own), "put" (a PUT of a path with a JSON body
// through the client's own HTTP client, the one its editStatus uses: editStatus itself sends no
// media_attributes), and any other name: that method of the client, called with the args as given.
import { readFileSync } from "node:fs";

import megalodon from "megalodon";

import { serve } from "./lines.mjs";

// megalodon is CommonJS: its default export is the generator, beside the named ones.
const generator = megalodon.default;
const { detector } = megalodon;

const base = process.argv[2];
let client = generator("mastodon", base);

async function run(op, args) {
  switch (op) {
    case "detector":
      return { data: await detector(base) };
    case "app":
      return { data: await client.registerApp(args[0], args[1] ?? {}) };
    case "token":
      return { data: await client.fetchAccessToken(...args) };
    case "use":
      client = generator("mastodon", base, args[0]);
      return { data: null };
    case "media":
      return await client.uploadMedia(readFileSync(args[0]), args[1]);
    case "put":
      return await client.client.put(args[0], args[1] ?? {});
    default:
      if (typeof client[op] !== "function") throw new Error(`no such call: ${op}`);
      return await client[op](...args);
  }
}

await serve(run, (err) => ({ status: err.response?.status ?? null, data: err.response?.data ?? null }));
