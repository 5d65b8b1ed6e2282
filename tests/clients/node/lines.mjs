// The line protocol of the npm client drivers (drive.mjs, drive-masto.mjs): one JSON request a
// line on stdin, {"op", "args"}; one JSON answer a line on stdout, {"ok": true, "status",
// "headers", "data"} from what run gave, or {"ok": false, "status", "data", "message"} from what
// failed(err) gave of an error.
import { createInterface } from "node:readline";

export async function serve(run, failed) {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const { op, args = [] } = JSON.parse(line);
    let found;
    try {
      const res = await run(op, args);
      found = { ok: true, status: res.status ?? null, headers: res.headers ?? {}, data: res.data ?? null };
    } catch (err) {
      found = { ok: false, status: null, data: null, ...failed(err), message: String(err?.message ?? err) };
    }
    process.stdout.write(JSON.stringify(found) + "\n");
  }
}
