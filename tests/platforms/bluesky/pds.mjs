#!/usr/bin/env node
// Starts a real Bluesky PDS (from @atproto/dev-env) with an in-memory PLC directory, for tests.
//
// Usage: node pds.mjs [--port N] [--ignore-stdin] HANDLE[:PASSWORD] ...
//
// Creates one account per HANDLE (handles must end in ".test"), gives each an app password
// (what a real user hands Byline), then prints exactly one JSON line on stdout:
//   {"pds_url": "...", "accounts": [{"handle", "did", "password", "app_password"}]}
// It stops cleanly on SIGTERM/SIGINT, or when stdin reaches end of file (so that it dies with
// the test process that started it), unless --ignore-stdin is given.
//
// Nothing leaves this machine: the PDS is configured with no AppView, moderation service,
// crawlers, e-mail or remote blob store, and as a second line of defence every outgoing TCP
// connection to a non-loopback host and every DNS TXT lookup is refused and reported on stderr.

import dns from 'node:dns'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const log = (msg) => process.stderr.write(`pds-harness: ${msg}\n`)

// ---- arguments -------------------------------------------------------------------------------

const parseArgs = (argv) => {
  const out = { port: 0, watchStdin: true, accounts: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--port') {
      out.port = Number.parseInt(argv[++i] ?? '', 10)
      if (!Number.isInteger(out.port) || out.port < 0) throw new Error('--port needs a number')
    } else if (arg === '--ignore-stdin') {
      out.watchStdin = false
    } else if (arg.startsWith('--')) {
      throw new Error(`unknown option ${arg}`)
    } else {
      const sep = arg.indexOf(':')
      const handle = sep === -1 ? arg : arg.slice(0, sep)
      const password = sep === -1 ? `${handle}-password` : arg.slice(sep + 1)
      if (!handle.endsWith('.test')) throw new Error(`handle ${handle} must end in .test`)
      out.accounts.push({ handle, password, email: `${handle.split('.')[0]}@byline.test` })
    }
  }
  return out
}

// ---- no outside network ----------------------------------------------------------------------

const isLoopback = (host) => {
  const h = String(host ?? 'localhost').replace(/^\[|\]$/g, '').toLowerCase()
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === '::1' ||
    /^127\.\d+\.\d+\.\d+$/.test(h) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(h)
  )
}

const guardNetwork = () => {
  const connect = net.Socket.prototype.connect
  net.Socket.prototype.connect = function guardedConnect(...args) {
    // Node passes either (options[, cb]), (port[, host][, cb]), (path[, cb]) or, internally,
    // an already normalised [options, cb] array.
    const first = Array.isArray(args[0]) ? args[0][0] : args[0]
    let host
    let port
    let isPath = false
    if (first !== null && typeof first === 'object') {
      host = first.host
      port = first.port
      isPath = first.path != null
    } else if (typeof first === 'string' && Number.isNaN(Number(first))) {
      isPath = true
    } else {
      port = first
      host = typeof args[1] === 'string' ? args[1] : undefined
    }
    if (!isPath && !isLoopback(host)) {
      const err = new Error(`refused an outside connection to ${host}:${port}`)
      err.code = 'ECONNREFUSED'
      log(err.message)
      process.nextTick(() => this.destroy(err))
      return this
    }
    return connect.apply(this, args)
  }
  const refuseTxt = async (name) => {
    log(`refused a DNS TXT lookup of ${name}`)
    const err = new Error(`queryTxt ENOTFOUND ${name}`)
    err.code = 'ENOTFOUND'
    throw err
  }
  dns.promises.resolveTxt = refuseTxt
  dns.promises.Resolver.prototype.resolveTxt = refuseTxt
}

// ---- accounts --------------------------------------------------------------------------------

const xrpc = async (pdsUrl, nsid, body, accessJwt) => {
  const headers = { 'content-type': 'application/json' }
  if (accessJwt) headers.authorization = `Bearer ${accessJwt}`
  const res = await fetch(`${pdsUrl}/xrpc/${nsid}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${nsid} failed with ${res.status}: ${text}`)
  return JSON.parse(text)
}

const createAccount = async (pdsUrl, { handle, email, password }) => {
  const session = await xrpc(pdsUrl, 'com.atproto.server.createAccount', {
    handle,
    email,
    password,
  })
  const appPassword = await xrpc(
    pdsUrl,
    'com.atproto.server.createAppPassword',
    { name: 'byline' },
    session.accessJwt,
  )
  return { handle: session.handle, did: session.did, password, app_password: appPassword.password }
}

// ---- main ------------------------------------------------------------------------------------

const main = async () => {
  const args = parseArgs(process.argv.slice(2))
  guardNetwork()
  // The PDS logs through pino, which writes to stdout by default; stdout carries our one JSON
  // line, so any logging the caller switches on (LOG_ENABLED=true) goes to stderr instead.
  process.env.LOG_DESTINATION ??= '/dev/stderr'

  const { TestNetworkNoAppView } = await import('@atproto/dev-env')
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'byline-pds-'))
  let network
  let stopping = false
  const stop = async (why, code = 0) => {
    if (stopping) return
    stopping = true
    log(`stopping (${why})`)
    const timer = setTimeout(() => {
      log('close timed out; exiting anyway')
      process.exit(1)
    }, 10_000)
    timer.unref()
    try {
      if (network) await network.close()
    } catch (err) {
      log(`close failed: ${err?.stack ?? err}`)
    }
    await fs.rm(workDir, { recursive: true, force: true })
    process.exit(code)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  if (args.watchStdin) {
    process.stdin.on('end', () => stop('stdin closed'))
    process.stdin.on('error', () => stop('stdin error'))
    process.stdin.resume()
  }

  try {
    await fs.mkdir(path.join(workDir, 'data'))
    network = await TestNetworkNoAppView.create({
      pds: {
        // dev-env picks a free port only when none is given: an explicit 0 would reach the
        // server and leave it listening somewhere other than the URL dev-env reports.
        ...(args.port ? { port: args.port } : {}),
        dataDirectory: path.join(workDir, 'data'),
        blobstoreDiskLocation: path.join(workDir, 'blobs'),
        // dev-env points these at ".invalid" hosts; with them unset the PDS never tries.
        bskyAppViewUrl: undefined,
        bskyAppViewDid: undefined,
        bskyAppViewCdnUrlPattern: undefined,
        modServiceUrl: undefined,
        modServiceDid: undefined,
        reportServiceUrl: undefined,
        reportServiceDid: undefined,
        crawlers: [],
        emailSmtpUrl: undefined,
        emailFromAddress: undefined,
        blobstoreS3Bucket: undefined,
        entrywayUrl: undefined,
        rateLimitsEnabled: false,
      },
    })
    const pds = network.pds
    const serviceDomains = pds.ctx.cfg.identity.serviceHandleDomains
    const handles = pds.ctx.idResolver.handle
    const resolveLocal = handles.resolve.bind(handles)
    // dev-env answers the PDS's own handles locally but sends any other handle to DNS and
    // https://<handle>/.well-known; here such handles simply do not resolve.
    handles.resolve = async (handle) =>
      serviceDomains.some((d) => handle.endsWith(d)) ? resolveLocal(handle) : undefined
    const dids = pds.ctx.idResolver.did
    const resolveDid = dids.resolveNoCache.bind(dids)
    dids.resolveNoCache = async (did) => (did.startsWith('did:plc:') ? resolveDid(did) : null)

    const accounts = []
    for (const account of args.accounts) accounts.push(await createAccount(pds.url, account))
    process.stdout.write(`${JSON.stringify({ pds_url: pds.url, accounts })}\n`)
  } catch (err) {
    log(`failed to start: ${err?.stack ?? err}${err?.cause ? `\ncaused by: ${err.cause?.stack ?? err.cause}` : ''}`)
    await stop('start failed', 1)
  }
}

main().catch((err) => {
  log(`fatal: ${err?.stack ?? err}`)
  process.exit(1)
})
