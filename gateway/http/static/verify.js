/* Byline: check what a public page shows against the signed log, in the reader's browser.
 *
 * The page marks each fact it shows with the log entry it comes from (data-entry), that entry's
 * type (data-type) and where in the entry the fact is (data-field). For every marked entry this
 * script fetches the entry's bytes and its inclusion proof from the public log API, recomputes the
 * RFC 6962 leaf hash and the root along the proof, and compares it with the root of the latest
 * checkpoint, whose Ed25519 signature (a C2SP signed note) it checks first with WebCrypto. Then it
 * checks that the entry says what the page shows: its type, post, account, the name, time or
 * link at data-field, for a post's words SHA-256(salt ‖ words) against the entry's text_hash, and
 * for who may reply or quote (data-words="gate") the words made from the settings at data-field.
 * Nothing here trusts the page's own claims about the log: only the key, which the reader is
 * asked to compare out of band.
 */
"use strict";

const BylineVerify = (() => {
  const encoder = new TextEncoder();
  const SIGNATURE_PREFIX = "\u2014 "; // an em dash and a space
  const MAX_SIGNATURES = 100;
  const PAGE = 1000; // the most entries one /log/entries answer holds

  class CheckError extends Error {}

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  async function sha256(...parts) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
  }

  function equal(a, b) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) throw new CheckError("not hex");
    return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
  }

  function fromBase64(text) {
    if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new CheckError("not base64");
    }
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  function toBase64(bytes) {
    return btoa(String.fromCharCode(...bytes));
  }

  function validName(name) {
    return name.length > 0 && !name.includes("+") && !/\s/u.test(name);
  }

  /** The C2SP key ID: the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key). */
  async function keyId(name, publicKey) {
    return (await sha256(encoder.encode(name), Uint8Array.of(0x0a, 0x01), publicKey)).slice(0, 4);
  }

  /** Parse a verifier key, name+hex(key id)+base64(0x01 ‖ Ed25519 public key), and import it. */
  async function parseVerifierKey(text) {
    const first = text.indexOf("+");
    const second = first < 0 ? -1 : text.indexOf("+", first + 1);
    if (second < 0) throw new CheckError("the verifier key is not name+keyid+key");
    const name = text.slice(0, first);
    const hexId = text.slice(first + 1, second);
    if (!validName(name) || !/^[0-9a-f]{8}$/.test(hexId)) {
      throw new CheckError("the verifier key has a bad name or key ID");
    }
    const raw = fromBase64(text.slice(second + 1));
    if (raw.length !== 33 || raw[0] !== 0x01) throw new CheckError("the verifier key is not an Ed25519 key");
    const publicKey = raw.slice(1);
    const id = fromHex(hexId);
    if (!equal(await keyId(name, publicKey), id)) throw new CheckError("the verifier key's ID does not match its key");
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return { name, id, publicKey, key };
  }

  /** Open a signed note: its text, once a signature by ``verifier`` verifies (signatures by
   * other keys are ignored; a bad one by this key fails). */
  async function openNote(note, verifier) {
    if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new CheckError("the note holds control characters");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new CheckError("the note has no signatures");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    if (!block || !block.endsWith("\n")) throw new CheckError("the note's signatures are cut off");
    const lines = block.slice(0, -1).split("\n");
    if (lines.length > MAX_SIGNATURES) throw new CheckError("the note has too many signatures");
    let verified = false;
    for (const line of lines) {
      if (!line.startsWith(SIGNATURE_PREFIX)) throw new CheckError("a signature line does not start with an em dash");
      const rest = line.slice(SIGNATURE_PREFIX.length);
      const space = rest.indexOf(" ");
      if (space <= 0) throw new CheckError("a signature line has no name");
      const name = rest.slice(0, space);
      const signature = fromBase64(rest.slice(space + 1));
      if (!validName(name) || signature.length < 5) throw new CheckError("a signature line is malformed");
      if (name !== verifier.name || !equal(signature.slice(0, 4), verifier.id)) continue;
      const good = signature.length === 68 && await crypto.subtle.verify(
        { name: "Ed25519" }, verifier.key, signature.slice(4), encoder.encode(text));
      if (!good) throw new CheckError("the checkpoint's signature does not verify");
      verified = true;
    }
    if (!verified) throw new CheckError("the checkpoint is not signed by the log's key");
    return text;
  }

  /** A checkpoint's text: origin, tree size and root hash lines. */
  function parseCheckpoint(text) {
    if (!text.endsWith("\n")) throw new CheckError("the checkpoint does not end with a newline");
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3 || !lines[0]) throw new CheckError("the checkpoint is malformed");
    if (!/^(?:0|[1-9][0-9]*)$/.test(lines[1]) || !Number.isSafeInteger(Number(lines[1]))) {
      throw new CheckError("the checkpoint's size is malformed");
    }
    const root = fromBase64(lines[2]);
    if (root.length !== 32 || toBase64(root) !== lines[2]) throw new CheckError("the checkpoint's root is malformed");
    return { origin: lines[0], size: Number(lines[1]), root };
  }

  /** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
  function leafHash(entry) {
    return sha256(Uint8Array.of(0x00), entry);
  }

  function nodeHash(left, right) {
    return sha256(Uint8Array.of(0x01), left, right);
  }

  /** The root an RFC 9162 inclusion proof leads to from leaf ``index`` of a tree of ``size``. */
  async function rootFromInclusion(leaf, index, size, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
      throw new CheckError(`leaf ${index} is not in a tree of ${size}`);
    }
    if (leaf.length !== 32 || proof.some((p) => p.length !== 32)) throw new CheckError("a hash is not 32 bytes");
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new CheckError("the inclusion proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        // Skip the levels where this node has no right sibling.
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new CheckError("the inclusion proof is too short");
    return r;
  }

  // -- the page ---------------------------------------------------------------------------------

  async function answer(path) {
    const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new CheckError(`the log answered ${response.status} to ${path.split("?")[0]}`);
    return response;
  }

  const getText = async (path) => (await answer(path)).text();
  const getJSON = async (path) => (await answer(path)).json();

  /** The signed checkpoint, after checking the key served is the one shown on the page. */
  async function signedCheckpoint() {
    const served = (await getText("/log/key")).trim();
    const shown = document.getElementById("verifier-key");
    if (shown && shown.textContent.trim() !== served) {
      throw new CheckError("the key served at /log/key is not the key shown on this page");
    }
    const verifier = await parseVerifierKey(served);
    const checkpoint = parseCheckpoint(await openNote(await getText("/log/checkpoint"), verifier));
    return checkpoint;
  }

  /** Entries by index, fetched in a few pages (runs of nearby indexes share one request). */
  async function fetchEntries(indexes) {
    const sorted = [...new Set(indexes)].sort((a, b) => a - b);
    const runs = [];
    for (const index of sorted) {
      const run = runs[runs.length - 1];
      if (run && index - run.start < PAGE && index - run.last <= 64) run.last = index;
      else runs.push({ start: index, last: index });
    }
    const found = new Map();
    await Promise.all(runs.map(async (run) => {
      const page = await getJSON(`/log/entries?start=${run.start}&end=${run.last + 1}`);
      for (const item of page.entries || []) found.set(item.index, fromBase64(item.leaf));
    }));
    return found;
  }

  function field(body, name) {
    if (["actor", "ts", "type", "account", "post"].includes(name)) return body[name];
    let value = body.data;
    for (const part of name.split(".")) value = value && typeof value === "object" ? value[part] : undefined;
    return value;
  }

  function shownValue(mark, expected) {
    if (mark.tagName === "TIME") return mark.getAttribute("datetime");
    if (mark.tagName === "A") return mark.getAttribute("href");
    if (Array.isArray(expected)) return Array.from(mark.querySelectorAll("bdi"), (b) => b.textContent);
    return mark.textContent;
  }

  // Who may reply to or quote a Bluesky post, in the words the page gives a gate's settings:
  // the same sentences as gateway/audit/gates.py's gate_words, made here from the entry.
  const THREADGATE = "app.bsky.feed.threadgate";
  const POSTGATE = "app.bsky.feed.postgate";
  const WHO = { mention: "people mentioned", follower: "the account's followers", following: "people the account follows" };

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function count(value) {
    return Number.isInteger(value) && value >= 0 && value <= 300;
  }

  function sameKeys(object, keys) {
    const own = Object.keys(object).sort();
    return own.length === keys.length && [...keys].sort().every((k, i) => k === own[i]);
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : (many || one + "s")}`;
  }

  function settingsFit(gate, settings) {
    if (gate === THREADGATE) {
      const replies = settings.replies;
      const rules = Array.isArray(replies) ? replies : [];
      const named = rules.length > 0 && rules.every((r) => ["mention", "follower", "following", "list"].includes(r))
        && new Set(rules).size === rules.length;
      return sameKeys(settings, ["replies", "lists", "hidden_replies"])
        && (replies === "everybody" || replies === "nobody" || named)
        && count(settings.lists) && count(settings.hidden_replies)
        && (settings.lists !== 0) === rules.includes("list");
    }
    return sameKeys(settings, ["quotes", "detached_quotes"]) && ["on", "off"].includes(settings.quotes)
      && count(settings.detached_quotes);
  }

  function gateWords(gate, settings) {
    if (gate !== THREADGATE && gate !== POSTGATE) return "Who may reply or quote changed";
    if (!isObject(settings) || !settingsFit(gate, settings)) {
      return gate === POSTGATE ? "Who may quote changed" : "Who may reply changed";
    }
    if (gate === POSTGATE) {
      const detached = settings.detached_quotes;
      return `Quotes: ${settings.quotes}` + (detached ? `; ${plural(detached, "quote")} detached` : "");
    }
    let words;
    if (typeof settings.replies === "string") {
      words = `Replies: ${settings.replies}`;
    } else {
      const who = settings.replies.filter((r) => r !== "list").map((r) => WHO[r]);
      if (settings.replies.includes("list")) who.push(`people on ${plural(settings.lists, "list")}`);
      words = "Replies: only " + (who.length === 1 ? who[0] : who.slice(0, -1).join(", ") + " and " + who[who.length - 1]);
    }
    const hidden = settings.hidden_replies;
    return words + (hidden ? `; ${plural(hidden, "reply", "replies")} hidden` : "");
  }

  function checkGateWords(mark, body, index) {
    // data-field names the settings; the gate they are of is beside them.
    const path = mark.dataset.field.split(".").slice(0, -1).join(".");
    const holder = path ? field(body, path) : body.data;
    if (!isObject(holder) || gateWords(holder.gate, holder.settings) !== mark.textContent) {
      throw new CheckError(`entry ${index} does not say who may reply or quote as the page does`);
    }
  }

  async function checkWords(mark, body, index) {
    const [committed] = (await getJSON(`/log/texts?start=${index}&end=${index + 1}`)).texts || [];
    if (!committed || committed.salt === null) throw new CheckError(`the log withholds the words of entry ${index}`);
    if (committed.hash !== body.data.text_hash) throw new CheckError(`the log's texts disagree with entry ${index}`);
    const digest = toHex(await sha256(fromHex(committed.salt), encoder.encode(mark.textContent)));
    if (digest !== body.data.text_hash) throw new CheckError("the words shown are not the words the log committed to");
  }

  function setStatus(element, state, message) {
    if (!element) return;
    element.classList.remove("checking", "verified", "unverified");
    element.classList.add(state);
    element.textContent = message;
  }

  async function checkItem(item, context) {
    const status = item.querySelector(".status");
    const account = item.dataset.account;
    const post = item.dataset.post || null;
    let pending = false;
    try {
      for (const mark of item.querySelectorAll(".mark[data-entry]")) {
        const index = Number(mark.dataset.entry);
        const found = await context.entry(index);
        if (found.pending) {
          pending = true;
          continue;
        }
        const body = found.body;
        if (body.type !== mark.dataset.type) throw new CheckError(`entry ${index} is a ${body.type}, not a ${mark.dataset.type}`);
        if (body.account !== account || body.post !== post) throw new CheckError(`entry ${index} is about something else`);
        if (mark.dataset.field === "text_hash") {
          await checkWords(mark, body, index);
          continue;
        }
        if (mark.dataset.words === "gate") {
          checkGateWords(mark, body, index);
          continue;
        }
        const expected = field(body, mark.dataset.field);
        const shown = shownValue(mark, expected);
        const same = Array.isArray(expected)
          ? Array.isArray(shown) && shown.length === expected.length && shown.every((v, i) => v === expected[i])
          : shown === String(expected ?? "");
        if (!same) throw new CheckError(`entry ${index} does not say what the page shows`);
      }
    } catch (error) {
      const reason = error instanceof CheckError ? error.message : `it could not be checked (${error.message})`;
      setStatus(status, "unverified", `Does not match the signed log: ${reason}.`);
      item.classList.add("failing");
      return "failed";
    }
    if (pending) {
      setStatus(status, "checking", "Not yet in a signed checkpoint: check again later.");
      return "pending";
    }
    setStatus(status, "verified", `Verified against checkpoint ${context.size}.`);
    return "verified";
  }

  function summarize(summary, results, size) {
    const failed = results.filter((r) => r === "failed").length;
    const pending = results.filter((r) => r === "pending").length;
    const total = results.length;
    if (failed) {
      setStatus(summary, "unverified", `${failed} of ${total} items on this page do not match the signed log.`);
    } else if (pending) {
      setStatus(summary, "checking", `${total - pending} of ${total} items verified against checkpoint ${size}; ${pending} not yet in a signed checkpoint.`);
    } else {
      setStatus(summary, "verified", `All ${total} items on this page verified against checkpoint ${size}.`);
    }
  }

  async function checkPage() {
    const items = Array.from(document.querySelectorAll(".checked"));
    const summary = document.getElementById("check-summary");
    if (!items.length) {
      setStatus(summary, "verified", "Nothing on this page to check.");
      return;
    }
    setStatus(summary, "checking", "Checking…");
    for (const item of items) setStatus(item.querySelector(".status"), "checking", "Checking…");
    let checkpoint;
    try {
      checkpoint = await signedCheckpoint();
    } catch (error) {
      const reason = error instanceof CheckError ? error.message : `the checkpoint could not be read (${error.message})`;
      for (const item of items) {
        setStatus(item.querySelector(".status"), "unverified", `Does not match the signed log: ${reason}.`);
        item.classList.add("failing");
      }
      setStatus(summary, "unverified", `Nothing on this page could be verified: ${reason}.`);
      return;
    }
    const wanted = items.flatMap((item) => Array.from(item.querySelectorAll(".mark[data-entry]"), (m) => Number(m.dataset.entry)));
    const inTree = wanted.filter((i) => Number.isSafeInteger(i) && i >= 0 && i < checkpoint.size);
    const fetched = fetchEntries(inTree);
    fetched.catch(() => {}); // its failure is each entry's, reported where that entry is used
    const cache = new Map();
    const context = {
      size: checkpoint.size,
      entry(index) {
        if (!cache.has(index)) cache.set(index, (async () => {
          if (!Number.isSafeInteger(index) || index < 0) throw new CheckError("a mark names no entry");
          if (index >= checkpoint.size) return { pending: true };
          const [entries, proof] = await Promise.all([
            fetched, getJSON(`/log/proof/inclusion?index=${index}&size=${checkpoint.size}`)]);
          const raw = entries.get(index);
          if (!raw) throw new CheckError(`the log did not give entry ${index}`);
          const root = await rootFromInclusion(await leafHash(raw), index, checkpoint.size, (proof.proof || []).map(fromBase64));
          if (!equal(root, checkpoint.root)) throw new CheckError(`entry ${index} is not in the signed tree`);
          let body;
          try {
            body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
          } catch {
            throw new CheckError(`entry ${index} is not JSON`);
          }
          if (!body || typeof body !== "object" || !body.data || typeof body.data !== "object") {
            throw new CheckError(`entry ${index} is not a log entry`);
          }
          return { body };
        })());
        return cache.get(index);
      },
    };
    const results = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const at = next++;
        results[at] = await checkItem(items[at], context);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    summarize(summary, results, checkpoint.size);
  }

  if (typeof document !== "undefined" && document.querySelector(".checked, #check-summary")) {
    // Marks the page as checked however the check ended, for whoever waits for it (the tests).
    checkPage().finally(() => {
      document.documentElement.dataset.checked = "done";
    });
  }

  return {
    parseVerifierKey, openNote, parseCheckpoint, leafHash, rootFromInclusion, fromBase64, toHex, gateWords, CheckError,
  };
})();

window.BylineVerify = BylineVerify;
