// Proctor's result verifier for the browser: an independent implementation of what
// `proctor verify` checks (crates/proctor-attest/src/verify.rs), so a visitor need not trust
// the page's server, only this file and the key fingerprint they compare.
//
// One dependency-free ES module; it runs unchanged in browsers and in Node 20, because it
// uses nothing but `globalThis.crypto.subtle` (SHA-256 and Ed25519), TextEncoder/TextDecoder
// and BigInt. It is tested against the Rust implementation on the same files
// (tests/verify.test.mjs).
//
// Every exported function resolves to a result object and never throws or rejects on hostile
// input: failures are `{ok: false, reason}`. Internally a failure is a thrown `Reason`, caught
// at the export boundary, so the happy path reads straight through. The low-level helpers
// (sha256, leafHash, nodeHash, pae, toHex, base64Encode) take bytes the caller already holds
// and reject only on an argument of the wrong type, a programming error, never on content.
//
// The formats, as the Rust code defines them:
// - key id: lowercase hex SHA-256 of the Ed25519 SubjectPublicKeyInfo DER (keys.rs);
// - DSSE v1 envelope, compact JSON, standard padded canonical base64, signatures over
//   PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body (dsse.rs);
// - log leaf = the envelope file's exact bytes, hashed SHA-256(0x00 || bytes) (merkle.rs);
// - checkpoint = C2SP signed note whose key name is the origin, signed by the same service
//   key; note key id = first 4 bytes of SHA-256(name || 0x0A || 0x01 || key) (note.rs, vkey.rs).

const subtle = globalThis.crypto && globalThis.crypto.subtle;
const utf8 = new TextEncoder();
// fatal: a file that is not UTF-8 is refused, as Rust's from_utf8 refuses it.
// ignoreBOM: keep a leading BOM so it is refused (serde_json and the note parser refuse it)
// instead of being silently stripped.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The DSSE payload type of an in-toto statement (statement.rs PAYLOAD_TYPE). */
export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** in-toto Statement v1's `_type`. */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** Subject names (statement.rs): the files `proctor demo --out` writes beside the attestation. */
export const EVAL_SUBJECT = 'eval.wasm';
export const DATASET_SUBJECT = 'dataset.jsonl';
/** At most this many signature lines in a note (note.rs MAX_SIGNATURES). */
export const MAX_NOTE_SIGNATURES = 100;

const U64_MAX = (1n << 64n) - 1n;
/** Every Ed25519 SubjectPublicKeyInfo starts with these 12 bytes (RFC 8410 §4). */
const SPKI_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);

class Reason extends Error {}
const fail = (msg) => {
  throw new Reason(msg);
};

/** Runs `fn`, turning any exception (ours or the platform's) into `{ok: false, reason}`. */
async function guard(fn) {
  try {
    return await fn();
  } catch (e) {
    return { ok: false, reason: reasonOf(e) };
  }
}
function reasonOf(e) {
  if (e instanceof Reason) return e.message;
  // Not ours: a platform error (stack exhaustion on absurd nesting, a missing API). Still a
  // failure, never an exception through to the page.
  return `internal error: ${e && e.name ? e.name + ': ' : ''}${e && e.message ? e.message : String(e)}`;
}

// ---------------------------------------------------------------------------------------
// Bytes, hex, base64

/** Uint8Array of an ArrayBuffer, a typed array / DataView, or a string (as UTF-8). */
function bytesOf(x, what) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === 'string') return utf8.encode(x);
  return fail(`${what}: expected bytes or a string`);
}

/** Text of bytes, strictly UTF-8; strings pass through. */
function textOf(x, what) {
  if (typeof x === 'string') return x;
  try {
    return strictUtf8.decode(bytesOf(x, what));
  } catch (e) {
    if (e instanceof Reason) throw e;
    return fail(`${what}: not UTF-8`);
  }
}

export function toHex(bytes) {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** 64 hex digits (either case, as Rust's `hex` crate reads them) to 32 bytes, else null. */
function digestFromHex(text) {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]{64}$/.test(text)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/**
 * Standard base64 with padding, decoded canonically as Rust's base64 STANDARD engine does:
 * no whitespace, padding required, non-zero trailing bits refused. `atob` is lenient on all
 * three, so two different strings could decode to the same bytes; this returns null instead.
 */
export function base64Decode(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0) return null;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const body = text.length - pad;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < body; i++) {
    const v = B64_INDEX.get(text[i]);
    if (v === undefined) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  // What is left over must be zero bits (canonical encoding).
  if (acc !== 0) return null;
  return out;
}

export function base64Encode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
}

/** SHA-256 of bytes (a Promise of a 32-byte Uint8Array). */
export async function sha256(bytes) {
  if (!subtle) fail('this environment has no WebCrypto (crypto.subtle); use https or localhost');
  return new Uint8Array(await subtle.digest('SHA-256', bytesOf(bytes, 'data')));
}

// ---------------------------------------------------------------------------------------
// Ed25519

// The RFC 8032 §7.1 TEST 1 public key: importing it tells "no Ed25519 in this browser" apart
// from "a key that is not a point", which must read differently to a visitor.
const PROBE_KEY = Uint8Array.from(
  'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'.match(/../g),
  (h) => parseInt(h, 16),
);
let ed25519Support;
async function requireEd25519() {
  if (!subtle) fail('this environment has no WebCrypto (crypto.subtle); use https or localhost');
  ed25519Support ??= subtle
    .importKey('raw', PROBE_KEY, { name: 'Ed25519' }, false, ['verify'])
    .then(() => true, () => false);
  if (!(await ed25519Support)) {
    fail('this browser cannot verify Ed25519 signatures (WebCrypto has no Ed25519); try a current browser');
  }
}

/** Whether `sig` is a valid Ed25519 signature by the 32-byte key `raw` over `message`. */
async function ed25519Verify(raw, message, sig) {
  await requireEd25519();
  // ring refuses any signature that is not 64 bytes; say so before the platform does.
  if (sig.length !== 64) return false;
  try {
    const key = await subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
    return await subtle.verify('Ed25519', key, sig, message);
  } catch {
    // A key that is not a valid point: no signature verifies with it (as in ring).
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Keys

/**
 * The DER inside the first PEM block of `text`, which must be labelled `label`, as pem.rs
 * reads it: text around the block is ignored, lines are trimmed, CRLF is accepted.
 */
function pemDecode(text, label) {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '').replace(/^\p{White_Space}+|\p{White_Space}+$/gu, ''));
  let i = 0;
  let found = null;
  for (; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('-----BEGIN ') && l.endsWith('-----') && l.length >= 16) {
      found = l.slice(11, -5);
      break;
    }
  }
  if (found === null) fail('not a PEM file: no "-----BEGIN" line');
  if (found !== label) fail(`a PEM block labelled ${JSON.stringify(found)} where ${JSON.stringify(label)} was expected`);
  let body = '';
  for (i++; i < lines.length; i++) {
    if (lines[i] === `-----END ${label}-----`) {
      const der = base64Decode(body);
      if (der === null) fail('the PEM body is not base64');
      return der;
    }
    body += lines[i];
  }
  return fail(`the PEM block has no "-----END ${label}-----" line (truncated file?)`);
}

/** The 32-byte key of an Ed25519 SPKI DER, or a Reason. */
function rawFromSpki(der) {
  if (der.length !== 44 || !equalBytes(der.subarray(0, 12), SPKI_PREFIX)) {
    fail('not an Ed25519 public key: expected a 44-byte SubjectPublicKeyInfo with algorithm 1.3.101.112');
  }
  return der.slice(12);
}

/**
 * The key id the visitor compares with the one the service publishes (`proctor keys show`):
 * lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
 * @param {Uint8Array|ArrayBuffer} spkiDer
 * @returns {Promise<{ok: true, keyId: string} | {ok: false, reason: string}>}
 */
export function keyId(spkiDer) {
  return guard(async () => {
    const raw = rawFromSpki(bytesOf(spkiDer, 'key'));
    return { ok: true, keyId: toHex(await sha256(concat(SPKI_PREFIX, raw))) };
  });
}

/**
 * Reads a `PUBLIC KEY` PEM file (what `GET /v1/public-key` serves and `public-key.pem` holds).
 * @param {string|Uint8Array} pem
 * @returns {Promise<{ok: true, raw: Uint8Array, spki: Uint8Array, keyId: string} |
 *                   {ok: false, reason: string}>}
 */
export function parsePublicKeyPem(pem) {
  return guard(async () => {
    const raw = rawFromSpki(pemDecode(textOf(pem, 'public key'), 'PUBLIC KEY'));
    const spki = concat(SPKI_PREFIX, raw);
    return { ok: true, raw, spki, keyId: toHex(await sha256(spki)) };
  });
}

/** A key from what a caller may hold: PEM text, SPKI DER, 32 raw bytes, or a parsed key. */
async function loadKey(key) {
  if (key && typeof key === 'object' && key.raw instanceof Uint8Array && key.ok !== false) {
    key = key.raw;
  }
  let parsed;
  if (typeof key === 'string') {
    parsed = await parsePublicKeyPem(key);
  } else {
    const bytes = bytesOf(key, 'public key');
    const raw = bytes.length === 32 ? bytes.slice() : null;
    if (raw === null) {
      const id = await keyId(bytes);
      parsed = id.ok ? { ok: true, raw: bytes.slice(12), spki: bytes.slice(), keyId: id.keyId } : id;
    } else {
      const spki = concat(SPKI_PREFIX, raw);
      parsed = { ok: true, raw, spki, keyId: toHex(await sha256(spki)) };
    }
  }
  if (!parsed.ok) fail(parsed.reason);
  return parsed;
}

// ---------------------------------------------------------------------------------------
// JSON, as strictly as serde_json reads Proctor's structs
//
// JSON.parse is laxer than serde_json where it matters for a verifier: it keeps the last of
// duplicate keys (serde refuses duplicate struct fields), accepts lone surrogates, rounds
// integers beyond 2^53 and reads `1.0` as an integer. This small parser keeps numbers as
// their source text and marks objects with duplicate keys, so the readers below accept
// exactly what the Rust structs accept.

class JsonNumber {
  constructor(raw) {
    this.raw = raw;
  }
}
const HAS_DUPLICATES = new WeakSet();
// serde_json's recursion limit: 128 levels refused, 127 accepted.
const MAX_DEPTH = 127;
// Sticky, so it matches at the parser's position without copying the rest of the text.
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function parseJson(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const err = (what) => fail(`${what} at offset ${i}`);
  const value = (depth) => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) err('recursion limit exceeded');
      i++;
      if (c === '[') {
        const arr = [];
        ws();
        if (text[i] === ']') {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === ']') {
            i++;
            return arr;
          } else err('expected , or ]');
        }
      }
      const obj = Object.create(null);
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') err('expected a key');
        const key = string();
        ws();
        if (text[i++] !== ':') err('expected :');
        const v = value(depth + 1);
        if (Object.prototype.hasOwnProperty.call(obj, key)) HAS_DUPLICATES.add(obj);
        obj[key] = v;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else err('expected , or }');
      }
    }
    if (c === '"') return string();
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m) {
      i += m[0].length;
      return new JsonNumber(m[0]);
    }
    for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return err('expected a value');
  };
  const string = () => {
    i++; // the opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) err('unterminated string');
      const c = text[i++];
      if (c === '"') break;
      if (c < ' ') err('control character in a string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[i++];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
      if (simple !== undefined) out += simple;
      else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i, i + 4))) {
        out += String.fromCharCode(parseInt(text.slice(i, i + 4), 16));
        i += 4;
      } else err('bad escape');
    }
    // serde_json refuses a \u escape that leaves a lone surrogate; so do we.
    if (/\p{Surrogate}/u.test(out)) err('lone surrogate in a string');
    return out;
  };
  const v = value(0);
  ws();
  if (i !== text.length) err('trailing characters');
  return v;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonNumber);

/** A serde struct with `deny_unknown_fields`: exactly these fields, each once. */
function struct(v, what, fields) {
  if (!isObject(v)) fail(`${what}: expected an object`);
  if (HAS_DUPLICATES.has(v)) fail(`${what}: duplicate field`);
  for (const k of Object.keys(v)) if (!fields.includes(k)) fail(`${what}: unknown field ${JSON.stringify(k)}`);
  for (const k of fields) if (!(k in v)) fail(`${what}: missing field ${JSON.stringify(k)}`);
  return v;
}
function str(v, what) {
  if (typeof v !== 'string') fail(`${what}: expected a string`);
  return v;
}
/** A JSON integer that serde reads as u64 (no sign, fraction or exponent), as a BigInt. */
function u64Of(v) {
  if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]*)$/.test(v.raw)) return null;
  const n = BigInt(v.raw);
  return n <= U64_MAX ? n : null;
}
function u64(v, what) {
  const n = u64Of(v);
  if (n === null) fail(`${what}: expected an unsigned 64-bit integer`);
  return n;
}
function hash(v, what) {
  const h = typeof v === 'string' ? base64Decode(v) : null;
  if (h === null || h.length !== 32) fail(`${what}: not a base64 sha256 hash`);
  return h;
}

/** The parsed JSON as plain JS values for display (numbers as Number; exact text lost). */
function plain(v) {
  if (v instanceof JsonNumber) return Number(v.raw);
  if (Array.isArray(v)) return v.map(plain);
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

// ---------------------------------------------------------------------------------------
// DSSE

/** DSSE's pre-authentication encoding; lengths are byte lengths in ASCII decimal. */
export function pae(payloadType, payload) {
  const type = utf8.encode(payloadType);
  return concat(
    utf8.encode(`DSSEv1 ${type.length} `),
    type,
    utf8.encode(` ${payload.length} `),
    payload,
  );
}

/** Envelope::from_bytes: the wire struct, base64 decoded. */
function parseEnvelope(bytes) {
  let wire;
  try {
    wire = struct(parseJson(textOf(bytes, 'envelope')), 'envelope', ['payload', 'payloadType', 'signatures']);
    str(wire.payload, 'payload');
    str(wire.payloadType, 'payloadType');
    if (!Array.isArray(wire.signatures)) fail('signatures: expected an array');
    for (const s of wire.signatures) {
      struct(s, 'signature', ['keyid', 'sig']);
      str(s.keyid, 'keyid');
      str(s.sig, 'sig');
    }
  } catch (e) {
    fail(`not a DSSE envelope: ${reasonOf(e)}`);
  }
  const payload = base64Decode(wire.payload);
  if (payload === null) fail('not a DSSE envelope: payload: not canonical padded base64');
  const signatures = wire.signatures.map((s) => {
    const sig = base64Decode(s.sig);
    if (sig === null) fail('not a DSSE envelope: signature: not canonical padded base64');
    return { keyid: s.keyid, sig };
  });
  return { payloadType: wire.payloadType, payload, signatures };
}

/** Statement::parse_any, and the payload-type check verify.rs makes before it. */
function parseStatement(payloadType, payload) {
  if (payloadType !== PAYLOAD_TYPE) {
    fail(`payload type ${JSON.stringify(payloadType)}, expected ${JSON.stringify(PAYLOAD_TYPE)}`);
  }
  try {
    const s = struct(parseJson(textOf(payload, 'payload')), 'statement', ['_type', 'subject', 'predicateType', 'predicate']);
    str(s._type, '_type');
    str(s.predicateType, 'predicateType');
    if (!Array.isArray(s.subject)) fail('subject: expected an array');
    const subjects = s.subject.map((sub) => {
      struct(sub, 'subject', ['name', 'digest']);
      struct(sub.digest, 'digest', ['sha256']);
      const d = digestFromHex(str(sub.digest.sha256, 'sha256'));
      if (d === null) fail('sha256: expected 64 hex digits');
      return { name: str(sub.name, 'name'), sha256: d };
    });
    if (s._type !== STATEMENT_TYPE) fail(`_type ${JSON.stringify(s._type)}, expected ${JSON.stringify(STATEMENT_TYPE)}`);
    return { raw: s, subjects };
  } catch (e) {
    fail(`not an in-toto Statement v1: ${reasonOf(e)}`);
  }
}

/**
 * Verifies a DSSE envelope with the service key, as Envelope::verify does: at least one
 * signature, and every signature names this key's id and verifies over the PAE. DSSE does not
 * sign `keyid`, so it only picks the key; an extra signature by another key is tampering.
 *
 * @param {Uint8Array|ArrayBuffer|string} envelope the envelope file's exact bytes
 * @param {string|Uint8Array|object} publicKey PEM text, SPKI DER, 32 raw bytes or a parsed key
 * @returns {Promise<{ok: boolean, reason?: string, keyId?: string, payloadType?: string,
 *   payload?: Uint8Array, statement?: object|null, statementError?: string}>}
 *   `statement` is the in-toto statement (plain JSON) when the signature verified and the
 *   payload is one; otherwise null with `statementError` saying why.
 */
export function verifyEnvelope(envelope, publicKey) {
  return guard(async () => {
    const key = await loadKey(publicKey);
    const r = await verifyEnvelopeWith(bytesOf(envelope, 'envelope'), key);
    if (!r.ok) return r;
    return { ...r, statement: r.statement ? plain(r.statement.raw) : null };
  });
}

async function verifyEnvelopeWith(bytes, key) {
  let env;
  try {
    env = parseEnvelope(bytes);
    if (env.signatures.length === 0) fail('the envelope has no signatures');
    const message = pae(env.payloadType, env.payload);
    for (const s of env.signatures) {
      if (s.keyid !== key.keyId) fail(`signed by an unknown key (keyid ${JSON.stringify(s.keyid)})`);
      if (!(await ed25519Verify(key.raw, message, s.sig))) fail(`the signature by key ${s.keyid} does not verify`);
    }
  } catch (e) {
    return { ok: false, reason: reasonOf(e) };
  }
  // Only a signed payload is worth reading.
  let statement = null;
  let statementError;
  try {
    statement = parseStatement(env.payloadType, env.payload);
  } catch (e) {
    statementError = reasonOf(e);
  }
  return { ok: true, keyId: key.keyId, payloadType: env.payloadType, payload: env.payload, statement, statementError };
}

// ---------------------------------------------------------------------------------------
// Merkle tree (RFC 6962 §2.1 hashing, RFC 9162 §2.1.3.2 / §2.1.4.2 verification)
//
// Indices and sizes are BigInt inside: JS bitwise operators on Numbers are 32-bit, and the
// Rust side takes any u64. Work is bounded by the proof-length check, at most 64 hashes for
// any u64 sizes, made before anything is hashed.

/** SHA-256(0x00 || entry): the log leaf of an entry (for Proctor, the envelope's bytes). */
export async function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), bytesOf(entry, 'entry')));
}
/** SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}
/** The root of the empty tree, SHA-256 of nothing. */
export const EMPTY_ROOT_HEX = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** A u64 from a safe integer Number, a BigInt or a canonical decimal string. */
function toU64(x, what) {
  let n = null;
  if (typeof x === 'bigint') n = x;
  else if (typeof x === 'number' && Number.isSafeInteger(x)) n = BigInt(x);
  else if (typeof x === 'string' && /^(0|[1-9][0-9]*)$/.test(x)) n = BigInt(x);
  if (n === null || n < 0n || n > U64_MAX) fail(`${what}: not an unsigned 64-bit integer`);
  return n;
}
function hashList(list, what) {
  if (!Array.isArray(list)) fail(`${what}: expected a list of hashes`);
  // Sizes never call for more than 64; refusing early keeps hostile input cheap.
  if (list.length > 64) return null;
  return list.map((h) => {
    if (!(h instanceof Uint8Array) || h.length !== 32) fail(`${what}: every hash must be 32 bytes`);
    return h;
  });
}
function hash32(h, what) {
  if (!(h instanceof Uint8Array) || h.length !== 32) fail(`${what}: must be 32 bytes`);
  return h;
}
const bitLength = (x) => (x === 0n ? 0 : x.toString(2).length);
const popCount = (x) => [...x.toString(2)].filter((c) => c === '1').length;

/**
 * Hashes in the inclusion proof of leaf `index` in a tree of `size` (index < size), as
 * proof.rs; null for arguments that are not such u64s.
 */
export function inclusionProofLength(index, size) {
  return orNull(() => {
    if (toU64(index, 'index') >= toU64(size, 'size')) fail('index out of range');
    return proofLen(toU64(index, 'index'), toU64(size, 'size'));
  });
}
/** Hashes in the consistency proof from `old` to `new` leaves (0 < old < new), else null. */
export function consistencyProofLength(oldSize, newSize) {
  return orNull(() => {
    const o = toU64(oldSize, 'old size');
    const n = toU64(newSize, 'new size');
    if (!(0n < o && o < n)) fail('sizes out of range');
    return consistencyLen(o, n);
  });
}
function orNull(fn) {
  try {
    return fn();
  } catch {
    return null;
  }
}
function proofLen(i, size) {
  const inner = bitLength(i ^ (size - 1n));
  return inner + popCount(i >> BigInt(inner));
}
function consistencyLen(o, n) {
  let level = 0n;
  while (((o >> level) & 1n) === 0n) level++;
  const index = (o - 1n) >> level;
  const size = ((n - 1n) >> level) + 1n;
  return proofLen(index, size) + (index !== 0n ? 1 : 0);
}

async function rootFromInclusion(index, size, leaf, proof) {
  if (index >= size) fail(`leaf ${index} is not in a tree of ${size} leaves`);
  const expected = proofLen(index, size);
  const got = proof.got;
  if (proof.hashes === null || got !== expected) fail(`the proof has ${got} hashes; these sizes call for ${expected}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof.hashes) {
    if (sn === 0n) fail(`the proof has ${got} hashes; these sizes call for ${expected}`);
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      // Skip the levels where this node has no right sibling (the tree's right edge).
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail(`the proof has ${got} hashes; these sizes call for ${expected}`);
  return r;
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1-4).
 * @returns {Promise<{ok: true, root: Uint8Array} | {ok: false, reason: string}>}
 */
export function rootFromInclusionProof(index, size, leafHash32, proofHashes) {
  return guard(async () => {
    const proof = { hashes: hashList(proofHashes, 'proof'), got: Array.isArray(proofHashes) ? proofHashes.length : 0 };
    const root = await rootFromInclusion(toU64(index, 'index'), toU64(size, 'size'), hash32(leafHash32, 'leaf hash'), proof);
    return { ok: true, root };
  });
}

/**
 * Checks that `leafHash32` is leaf `index` of the tree of `size` leaves whose root is `root`.
 * @param {Uint8Array} leafHash32 the leaf hash (see leafHash), 32 bytes
 * @param {number|bigint|string} index
 * @param {number|bigint|string} size
 * @param {Uint8Array[]} proofHashes from the leaf up
 * @param {Uint8Array} root
 * @returns {Promise<{ok: boolean, reason?: string}>}
 */
export function verifyInclusion(leafHash32, index, size, proofHashes, root) {
  return guard(async () => {
    const r = await rootFromInclusionProof(index, size, leafHash32, proofHashes);
    if (!r.ok) return r;
    if (!equalBytes(r.root, hash32(root, 'root'))) fail('the proof does not lead to the expected root hash');
    return { ok: true };
  });
}

/**
 * Checks that the tree of `newSize` leaves with `newRoot` extends the one of `oldSize` with
 * `oldRoot` (RFC 9162 §2.1.4.2), as proof.rs verify_consistency.
 * @returns {Promise<{ok: boolean, reason?: string}>}
 */
export function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proofHashes) {
  return guard(async () => {
    const o = toU64(oldSize, 'old size');
    const n = toU64(newSize, 'new size');
    hash32(oldRoot, 'old root');
    hash32(newRoot, 'new root');
    if (o > n) fail(`a tree of ${n} leaves cannot extend one of ${o}`);
    const expected = o === 0n || o === n ? 0 : consistencyLen(o, n);
    const hashes = hashList(proofHashes, 'proof');
    const got = proofHashes.length;
    const wrong = () => fail(`the proof has ${got} hashes; these sizes call for ${expected}`);
    if (hashes === null || got !== expected) wrong();
    if (o === 0n) {
      if (toHex(oldRoot) !== EMPTY_ROOT_HEX) fail("the proof does not lead to the older tree's root hash");
      return { ok: true };
    }
    if (o === n) {
      if (!equalBytes(oldRoot, newRoot)) fail("the proof does not lead to the newer tree's root hash");
      return { ok: true };
    }
    // When the old tree is a perfect subtree, its root is the proof's implicit first element.
    const path = (o & (o - 1n)) === 0n ? [oldRoot, ...hashes] : hashes;
    let fn = o - 1n;
    let sn = n - 1n;
    while ((fn & 1n) === 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) wrong();
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) wrong();
    if (!equalBytes(fr, oldRoot)) fail("the proof does not lead to the older tree's root hash");
    if (!equalBytes(sr, newRoot)) fail("the proof does not lead to the newer tree's root hash");
    return { ok: true };
  });
}

/**
 * Reads `inclusion-proof.json`: {"log_index", "tree_size", "root_hash", "hashes"}, unknown
 * fields refused (proof.rs InclusionProof).
 * @returns {Promise<{ok: true, logIndex: bigint, treeSize: bigint, rootHash: Uint8Array,
 *   hashes: Uint8Array[]} | {ok: false, reason: string}>}
 */
export function parseInclusionProof(json) {
  return guard(async () => parseInclusionProofSync(json));
}
function parseInclusionProofSync(json) {
  try {
    const p = struct(parseJson(textOf(json, 'proof')), 'inclusion proof', ['log_index', 'tree_size', 'root_hash', 'hashes']);
    if (!Array.isArray(p.hashes)) fail('hashes: expected a list');
    return {
      ok: true,
      logIndex: u64(p.log_index, 'log_index'),
      treeSize: u64(p.tree_size, 'tree_size'),
      rootHash: hash(p.root_hash, 'root_hash'),
      hashes: p.hashes.map((h) => hash(h, 'hashes')),
    };
  } catch (e) {
    fail(`malformed proof file: ${reasonOf(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Signed notes and checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)

const BAD_KEY_NAME = /[\p{White_Space}+\u0000-\u001f]/u;

/** The C2SP key id (a u32) of an Ed25519 key under `name`, signature type 0x01. */
async function noteKeyIdOf(name, raw) {
  const d = await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, 0x01), raw));
  return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
}
const hex8 = (n) => n.toString(16).padStart(8, '0');

/**
 * The note key id of `publicKey` under `name` and its verifier key string
 * (`<name>+<8 hex>+<base64(0x01 || key)>`, what `proctor keys show` prints as `vkey:`).
 * @returns {Promise<{ok: true, keyId: number, keyIdHex: string, vkey: string} | {ok: false, reason: string}>}
 */
export function noteVerifierKey(name, publicKey) {
  return guard(async () => {
    if (typeof name !== 'string' || name === '' || BAD_KEY_NAME.test(name)) fail('invalid key name');
    const key = await loadKey(publicKey);
    const id = await noteKeyIdOf(name, key.raw);
    return { ok: true, keyId: id, keyIdHex: hex8(id), vkey: `${name}+${hex8(id)}+${base64Encode(concat(Uint8Array.of(1), key.raw))}` };
  });
}

/** SignedNote::parse then Checkpoint::parse_body, with Rust's messages. */
function parseCheckpointSync(input) {
  let note;
  try {
    note = textOf(input, 'checkpoint');
  } catch {
    fail('malformed checkpoint: not UTF-8');
  }
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) fail('malformed signed note: control character');
  // The text ends at the last blank line: signatures cannot contain one.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) fail('malformed signed note: no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const sigs = note.slice(split + 2);
  if (sigs === '') fail('malformed signed note: no signature lines');
  if (!sigs.endsWith('\n')) fail('malformed signed note: the last signature line does not end in a newline');
  const signatures = [];
  for (const line of sigs.slice(0, -1).split('\n')) {
    if (signatures.length === MAX_NOTE_SIGNATURES) fail('malformed signed note: too many signatures');
    if (!line.startsWith('\u2014 ')) fail('malformed signed note: a signature line does not start with "\u2014 "');
    const rest = line.slice(2);
    const sp = rest.indexOf(' ');
    if (sp < 0) fail('malformed signed note: a signature line has no signature');
    const name = rest.slice(0, sp);
    if (name === '' || BAD_KEY_NAME.test(name)) fail('malformed signed note: a signature line has a bad key name');
    const blob = base64Decode(rest.slice(sp + 1));
    if (blob === null) fail('malformed signed note: a signature is not standard base64');
    if (blob.length < 5) fail('malformed signed note: a signature is too short');
    const keyId = ((blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3]) >>> 0;
    signatures.push({ name, keyId, signature: blob.slice(4) });
  }
  // The body: exactly origin, size, root hash (Proctor writes no extension lines).
  if (!text.endsWith('\n')) fail('malformed checkpoint: the text does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) fail('malformed checkpoint: fewer than three lines');
  if (lines.length > 3) fail('malformed checkpoint: extension lines (Proctor writes none)');
  const [origin, sizeText, rootText] = lines;
  if (origin === '') fail('malformed checkpoint: empty origin');
  const size = /^(0|[1-9][0-9]*)$/.test(sizeText) ? BigInt(sizeText) : null;
  if (size === null || size > U64_MAX) fail('malformed checkpoint: the size is not a decimal number without leading zeros');
  const root = base64Decode(rootText);
  if (root === null || root.length !== 32) fail('malformed checkpoint: the root hash is not a base64 sha256 hash');
  return { ok: true, origin, size, root, text, signatures };
}

/**
 * Parses a signed checkpoint without verifying it (to show what it claims).
 * @param {string|Uint8Array} text
 * @returns {Promise<{ok: true, origin: string, size: bigint, root: Uint8Array, text: string,
 *   signatures: {name: string, keyId: number, signature: Uint8Array}[]} | {ok: false, reason: string}>}
 */
export function parseCheckpoint(text) {
  return guard(async () => parseCheckpointSync(text));
}

/**
 * Checkpoint::open: parses, then verifies the signature by the service key under the key
 * name equal to the origin. Signatures by other keys (witnesses) are ignored, as the spec
 * requires; every signature line by this key must verify, and there must be one.
 * @param {string|Uint8Array} text
 * @param {string|Uint8Array|object} logKey the service key (it signs envelopes and checkpoints)
 * @returns {Promise<{ok: boolean, reason?: string, checkpoint?: object}>}
 */
export function verifyCheckpoint(text, logKey) {
  return guard(async () => {
    const key = await loadKey(logKey);
    return { ok: true, checkpoint: await verifyCheckpointWith(text, key) };
  });
}
async function verifyCheckpointWith(text, key) {
  const cp = parseCheckpointSync(text);
  const id = await noteKeyIdOf(cp.origin, key.raw);
  const known = cp.signatures.filter((s) => s.name === cp.origin && s.keyId === id);
  if (known.length === 0) fail(`the note has no signature by key ${cp.origin}+${hex8(id)}`);
  const message = utf8.encode(cp.text);
  for (const s of known) {
    if (!(await ed25519Verify(key.raw, message, s.signature))) fail(`the signature by key ${cp.origin}+${hex8(id)} does not verify`);
  }
  return cp;
}

// ---------------------------------------------------------------------------------------
// The bundle: what `proctor verify DIR` checks

/** A local file's digest: its bytes (hashed), a string (hashed as UTF-8) or {sha256: hex}. */
async function digestOfLocal(x, what) {
  if (x && typeof x === 'object' && !(x instanceof ArrayBuffer) && !ArrayBuffer.isView(x)) {
    const d = digestFromHex(x.sha256);
    if (d === null) fail(`${what}: {sha256} must be 64 hex digits`);
    return d;
  }
  return sha256(bytesOf(x, what));
}

/** statement.predicate[field].sha256 when it is a string (verify.rs check_subject). */
function predicateDigest(statement, field) {
  const p = statement.raw.predicate;
  const f = isObject(p) ? p[field] : undefined;
  const s = isObject(f) ? f.sha256 : undefined;
  return typeof s === 'string' ? s : null;
}

function checkSubject(statement, name, field, local) {
  if (local === null) return;
  const found = statement.subjects.filter((s) => s.name === name);
  if (found.length !== 1) fail(`the statement has no single subject named ${JSON.stringify(name)}`);
  const attested = found[0].sha256;
  // Proctor's predicates repeat the digests; two copies that disagree were not signed in
  // good order.
  const claimed = predicateDigest(statement, field);
  if (claimed !== null) {
    const d = digestFromHex(claimed);
    if (d === null || !equalBytes(d, attested)) fail(`the statement's ${JSON.stringify(name)} subject and its predicate's digest disagree`);
  }
  if (!equalBytes(local, attested)) fail(`${name}: the file's sha256 is ${toHex(local)}; the statement attests ${toHex(attested)}`);
}

/**
 * Runs the checks `proctor verify` runs, in its order, each with its name:
 * - `key` (only when `pinnedKeyId` is given, or the key cannot be read): the key's id is the
 *   one the visitor pinned. Not a Rust check: Rust is handed the key file itself.
 * - `signature`: the DSSE envelope verifies with the key.
 * - `subjects` (when `eval` or `dataset` is given): the local files hash to the statement's
 *   subjects, which agree with the digests in the predicate. Needs a verified signature.
 * - `checkpoint` (when `checkpoint` is given): a signed note by the same key, name = origin.
 * - `inclusion` (when `proof` is given): the envelope's exact bytes, as a leaf, are in the
 *   checkpoint's tree at the proof's index, and that index is the statement's `log_index`.
 *   Needs a verified checkpoint.
 *
 * @param {object} bundle
 * @param {Uint8Array|ArrayBuffer|string} bundle.attestation the envelope file's exact bytes
 *   (fetch it with arrayBuffer(): text() would drop a BOM and change the leaf)
 * @param {string|Uint8Array|object} bundle.publicKey PEM, SPKI DER, raw 32 bytes or parsed key
 * @param {string|Uint8Array} [bundle.checkpoint] checkpoint.txt
 * @param {string|Uint8Array} [bundle.proof] inclusion-proof.json
 * @param {Uint8Array|ArrayBuffer|string|{sha256: string}} [bundle.eval] eval.wasm or its digest
 * @param {Uint8Array|ArrayBuffer|string|{sha256: string}} [bundle.dataset] dataset.jsonl or its digest
 * @param {string} [bundle.pinnedKeyId] the key id the visitor expects (64 hex digits)
 * @returns {Promise<{ok: boolean, checks: {name: string, ok: boolean, detail: string}[],
 *   keyId: string|null, statement: object|null, checkpoint: {origin: string, size: string,
 *   root: string}|null}>} `ok` when there is at least one check and all passed. For a failed
 *   check `detail` is the reason, worded as `proctor verify` words it.
 */
export async function verifyBundle(bundle) {
  const checks = [];
  const out = { ok: false, checks, keyId: null, statement: null, checkpoint: null };
  const record = async (name, fn) => {
    try {
      checks.push({ name, ok: true, detail: (await fn()) ?? 'ok' });
      return true;
    } catch (e) {
      checks.push({ name, ok: false, detail: reasonOf(e) });
      return false;
    }
  };
  try {
    const b = bundle ?? {};
    let key;
    try {
      key = await loadKey(b.publicKey);
      out.keyId = key.keyId;
    } catch (e) {
      // Rust refuses to run without a readable key (exit 2); the page still shows why.
      checks.push({ name: 'key', ok: false, detail: `the public key: ${reasonOf(e)}` });
      return out;
    }
    if (b.pinnedKeyId !== undefined) {
      await record('key', () => {
        const pin = String(b.pinnedKeyId).toLowerCase();
        if (pin !== key.keyId) fail(`the key's id is ${key.keyId}, not the pinned ${pin}`);
        return `key id ${key.keyId}`;
      });
    }

    const attestation = bytesOf(b.attestation ?? new Uint8Array(0), 'attestation');
    const env = await verifyEnvelopeWith(attestation, key);
    checks.push({ name: 'signature', ok: env.ok, detail: env.ok ? `signed by key ${key.keyId}` : env.reason });
    const statement = env.ok ? env.statement : null;
    if (statement) out.statement = plain(statement.raw);
    const statementError = env.ok ? env.statementError : 'not checked: the signature did not verify';

    if (b.eval !== undefined || b.dataset !== undefined) {
      await record('subjects', async () => {
        const local = async (x, what) => (x === undefined ? null : digestOfLocal(x, what));
        const [evalDigest, datasetDigest] = [await local(b.eval, 'eval'), await local(b.dataset, 'dataset')];
        if (!statement) fail(statementError);
        checkSubject(statement, EVAL_SUBJECT, 'eval', evalDigest);
        checkSubject(statement, DATASET_SUBJECT, 'dataset', datasetDigest);
        return [evalDigest && EVAL_SUBJECT, datasetDigest && DATASET_SUBJECT].filter(Boolean).join(' and ') + ' match the statement';
      });
    }

    let checkpoint = null;
    if (b.checkpoint !== undefined) {
      await record('checkpoint', async () => {
        checkpoint = await verifyCheckpointWith(b.checkpoint, key);
        out.checkpoint = { origin: checkpoint.origin, size: String(checkpoint.size), root: base64Encode(checkpoint.root) };
        return `${checkpoint.origin}, ${checkpoint.size} entries, signed by the same key`;
      });
    }

    if (b.proof !== undefined) {
      await record('inclusion', async () => {
        if (b.checkpoint === undefined) fail('no checkpoint to check the proof against');
        if (!checkpoint) fail('not checked: the checkpoint did not verify');
        const proof = parseInclusionProofSync(b.proof);
        if (proof.treeSize !== checkpoint.size || !equalBytes(proof.rootHash, checkpoint.root)) {
          fail(`the proof is for a tree of ${proof.treeSize} leaves and another root; the checkpoint is of ${checkpoint.size}`);
        }
        try {
          const root = await rootFromInclusion(proof.logIndex, checkpoint.size, await leafHash(attestation), {
            hashes: proof.hashes.length > 64 ? null : proof.hashes,
            got: proof.hashes.length,
          });
          if (!equalBytes(root, checkpoint.root)) fail('the proof does not lead to the expected root hash');
        } catch (e) {
          // The leaf is the file's exact bytes; an editor's final newline is the usual culprit.
          if (attestation.length > 0 && attestation[attestation.length - 1] === 0x0a) {
            fail(`${reasonOf(e)} (the leaf is the file's exact bytes, and this file ends in a newline: was one added?)`);
          }
          throw e;
        }
        const attested = statement ? u64Of(isObject(statement.raw.predicate) ? statement.raw.predicate.log_index : undefined) : null;
        if (attested !== null && attested !== proof.logIndex) {
          fail(`the statement says it is log entry ${attested}; the proof is for entry ${proof.logIndex}`);
        }
        return `entry ${proof.logIndex} of the tree of ${checkpoint.size}`;
      });
    }
  } catch (e) {
    checks.push({ name: 'internal', ok: false, detail: reasonOf(e) });
  }
  out.ok = checks.length > 0 && checks.every((c) => c.ok);
  return out;
}

/** One check as `proctor verify` prints it: `name: ok` or `name: FAILED (reason)`. */
export function formatCheck(check) {
  return check.ok ? `${check.name}: ok` : `${check.name}: FAILED (${check.detail})`;
}
