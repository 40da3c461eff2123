// Proof-of-work attestation for browsers (and Node), per docs/attestation.md.
//
// In a page, pass a synchronous SHA-256 such as @noble/hashes' sha256:
//
//   import { sha256 } from '@noble/hashes/sha2';
//   import { attestWithProofOfWork } from './pow.mjs';
//   const { token } = await attestWithProofOfWork('https://api.example.com', 'shop-web', { sha256 });
//   fetch('/api/products', { headers: { 'Apiguard-Token': token } });
//
// A synchronous hash is about five times faster than awaiting
// crypto.subtle.digest once per candidate. Run the solver in a Web Worker
// so the page stays responsive.

const b64url = {
  decode(s) {
    const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  },
  encode(bytes) {
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
};

// leadingZeroBits counts the zero bits at the start of a digest.
function leadingZeroBits(d) {
  let n = 0;
  for (const byte of d) {
    if (byte === 0) { n += 8; continue; }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

// solve finds the smallest counter with SHA-256(challenge ‖ counter as 8
// bytes big-endian) starting with `difficulty` zero bits.
export function solve(challenge, difficulty, sha256) {
  const msg = new Uint8Array(challenge.length + 8);
  msg.set(challenge);
  const view = new DataView(msg.buffer);
  const at = challenge.length;
  for (let hi = 0; ; hi++) {
    view.setUint32(at, hi);
    for (let lo = 0; lo <= 0xffffffff; lo++) {
      view.setUint32(at + 4, lo);
      if (leadingZeroBits(sha256(msg)) >= difficulty) {
        return BigInt(hi) * 4294967296n + BigInt(lo);
      }
    }
  }
}

async function post(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  const json = await res.json();
  if (!res.ok) {
    const err = new Error(`${json.type} ${json.reason ?? ''}`.trim());
    err.problem = json;
    throw err;
  }
  return json;
}

// attestWithProofOfWork runs challenge, solve and verify; it returns the
// verify response ({token, expires_in, ...}) and the solving time in ms.
export async function attestWithProofOfWork(baseURL, appId, { sha256, installationId, bind } = {}) {
  const ch = await post(`${baseURL}/.apiguard/attest/challenge`, JSON.stringify({ app_id: appId, provider: 'pow' }));
  const t0 = performance.now();
  const counter = solve(b64url.decode(ch.challenge), ch.pow.difficulty, sha256);
  const ms = performance.now() - t0;
  // The counter is a 64-bit integer: written into the JSON text as is.
  const extra = [installationId && `"installation_id":${JSON.stringify(installationId)}`, bind && `"bind":${JSON.stringify(bind)}`].filter(Boolean);
  const body = `{"challenge":${JSON.stringify(ch.challenge)},"counter":${counter}${extra.map((e) => ',' + e).join('')}}`;
  const tok = await post(`${baseURL}/.apiguard/attest/pow`, body);
  return { ...tok, solveMs: ms, difficulty: ch.pow.difficulty };
}

export { b64url };

// node pow.mjs GATEWAY APP: attest with Node's SHA-256 and print the result
// as JSON (used by the Go test of this example).
if (typeof process !== 'undefined' && import.meta.url === `file://${process.argv[1]}`) {
  const { createHash } = await import('node:crypto');
  const sha256 = (m) => createHash('sha256').update(m).digest();
  try {
    const out = await attestWithProofOfWork(process.argv[2], process.argv[3], { sha256, installationId: 'node-example' });
    console.log(JSON.stringify(out));
  } catch (e) {
    console.log(JSON.stringify({ error: e.message }));
    process.exit(1);
  }
}
